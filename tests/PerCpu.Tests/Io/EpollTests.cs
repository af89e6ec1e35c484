using System.Runtime.InteropServices;
using PerCpu.Platform;

namespace PerCpu.Tests.Io;

/// <summary>The raw layer against the kernel: the epoll_event layout chosen for this architecture round-trips.</summary>
public sealed unsafe class EpollTests
{
    /// <summary>
    /// Two eventfds with 64-bit keys whose every byte differs, both signalled: one epoll_wait must return both keys
    /// intact at entries 0 and 1. A wrong data offset or a wrong stride (12 vs 16 bytes) garbles them.
    /// </summary>
    [EpollFact]
    public void EventLayout_RoundTripsTwoEntriesThroughTheKernel()
    {
        const ulong KeyA = 0x8877_6655_4433_2211, KeyB = 0x1122_3344_5566_7788;
        int ep = Epoll.Create();
        int a = Epoll.CreateEventFd();
        int b = Epoll.CreateEventFd();
        try
        {
            Assert.True(ep >= 0 && a >= 0 && b >= 0, $"errno {Marshal.GetLastPInvokeError()}");
            Assert.Equal(0, Epoll.Control(ep, Epoll.CtlAdd, a, Epoll.In, KeyA));
            Assert.Equal(0, Epoll.Control(ep, Epoll.CtlAdd, b, Epoll.In | Epoll.EdgeTriggered, KeyB));
            Assert.Equal(8, Epoll.WriteEventFd(a, 1));
            Assert.Equal(8, Epoll.WriteEventFd(b, 1));
            byte* events = stackalloc byte[4 * 16];
            int n = Epoll.Wait(ep, events, 4, 0); // eventfd writes signal synchronously: both are ready now
            Assert.Equal(2, n);
            var keys = new HashSet<ulong> { Epoll.GetData(events, 0), Epoll.GetData(events, 1) };
            Assert.Equal(new HashSet<ulong> { KeyA, KeyB }, keys);
            Assert.Equal(Epoll.In, Epoll.GetEvents(events, 0));
            Assert.Equal(Epoll.In, Epoll.GetEvents(events, 1));
            // Level-triggered a is still readable (never read); edge-triggered b reported its edge already.
            Assert.Equal(1, Epoll.Wait(ep, events, 4, 0));
            Assert.Equal(KeyA, Epoll.GetData(events, 0));
            Assert.Equal(8, Epoll.ReadEventFd(a, out ulong counter));
            Assert.Equal(1UL, counter);
            Assert.Equal(0, Epoll.Wait(ep, events, 4, 0));
        }
        finally
        {
            if (b >= 0) Epoll.CloseFd(b);
            if (a >= 0) Epoll.CloseFd(a);
            if (ep >= 0) Epoll.CloseFd(ep);
        }
    }

    [EpollFact]
    public void Control_OnABadDescriptor_ReportsEbadfThroughGetLastPInvokeError()
    {
        int ep = Epoll.Create();
        try
        {
            Assert.Equal(-1, Epoll.Control(ep, Epoll.CtlAdd, 1_000_000, Epoll.In, 1));
            Assert.Equal(Epoll.EBadF, Marshal.GetLastPInvokeError());
        }
        finally
        {
            Epoll.CloseFd(ep);
        }
    }
}
