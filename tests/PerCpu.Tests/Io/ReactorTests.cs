using System.Diagnostics;
using System.Net.Sockets;
using PerCpu.Io;
using PerCpu.Platform;

namespace PerCpu.Tests.Io;

/// <summary>
/// The reactor on real loopback sockets. Waits are on readiness itself (poll(2) on the socket, or a Park that only a
/// readiness event or a wake can end before a one-minute bound), never on a sleep, so no test depends on timing.
/// </summary>
public sealed class ReactorTests
{
    /// <summary>Parks this long at most where only an event can end the park: reaching it means the event never came.</summary>
    private const long HangNs = 60_000_000_000;

    private sealed class Recorder : IReadinessHandler
    {
        public int Count;
        public IoEvents Last;
        public ReactorRegistration LastRegistration;
        public Action<Recorder>? Then;

        public void OnReadiness(ReactorRegistration registration, IoEvents events)
        {
            Count++;
            Last = events;
            LastRegistration = registration;
            Then?.Invoke(this);
        }
    }

    /// <summary>Parks until <paramref name="handler"/> has been called <paramref name="count"/> times, failing after the hang bound.</summary>
    private static void ParkUntil(Reactor reactor, Recorder handler, int count)
    {
        var bound = Stopwatch.StartNew();
        while (handler.Count < count)
        {
            reactor.Park(HangNs);
            if (bound.Elapsed > TestUtil.Hang) throw new Xunit.Sdk.XunitException($"Hang detector: {count - handler.Count} readiness events never came");
        }
    }

    [EpollFact]
    public void EpollEvent_HasTheKernelLayoutOfThisArchitecture()
    {
        // Packed on x86-64 (EPOLL_PACKED), naturally aligned elsewhere.
        if (System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64)
        {
            Assert.Equal(12, Epoll.EventSize);
            Assert.Equal(4, Epoll.DataOffset);
        }
        else
        {
            Assert.Equal(16, Epoll.EventSize);
            Assert.Equal(8, Epoll.DataOffset);
        }
    }

    [Theory]
    [InlineData(-1, -1)]
    [InlineData(0, 0)]
    [InlineData(1, 1)]
    [InlineData(999_999, 1)]
    [InlineData(1_000_000, 1)]
    [InlineData(1_000_001, 2)]
    [InlineData(long.MaxValue, int.MaxValue)]
    public void ParkTimeout_IsRoundedUpToWholeMilliseconds(long ns, int ms) => Assert.Equal(ms, Reactor.ToTimeoutMs(ns));

    [EpollFact]
    public void Poll_WithNothingRegistered_MakesNoSyscall()
    {
        using var reactor = new Reactor();
        for (int i = 0; i < 1000; i++) Assert.Equal(0, reactor.Poll(64));
        Assert.Equal(0, reactor.WaitCalls);
        Assert.Equal(0, reactor.RegisteredCount);
    }

    [EpollFact]
    public void Poll_RegisteredSocket_PeerWrite_DispatchesReadable()
    {
        using var reactor = new Reactor();
        using var pair = LoopbackPair.Create();
        var handler = new Recorder();
        ReactorRegistration registration = reactor.Register(pair.Server.SafeHandle, handler, IoEvents.Readable);
        Assert.Equal(1, reactor.RegisteredCount);
        Assert.Equal(0, reactor.Poll(64));
        pair.PeerSend();
        pair.WaitReadable();
        Assert.Equal(1, reactor.Poll(64));
        Assert.Equal(1, handler.Count);
        Assert.True(handler.Last.HasFlag(IoEvents.Readable));
        Assert.Equal(registration, handler.LastRegistration);
    }

    [EpollFact]
    public void EdgeTriggered_ReportsEachArrivalOnce_NotAgainWhileTheDataWaits()
    {
        using var reactor = new Reactor();
        using var pair = LoopbackPair.Create();
        var handler = new Recorder();
        reactor.Register(pair.Server.SafeHandle, handler, IoEvents.Readable, ReactorTrigger.Edge);
        pair.PeerSend();
        pair.WaitReadable();
        Assert.Equal(1, reactor.Poll(64));
        // Not read: still readable, but no new edge.
        for (int i = 0; i < 10; i++) Assert.Equal(0, reactor.Poll(64));
        // A new arrival is a new edge, even though the first byte is still unread: a park ends on it.
        pair.PeerSend();
        ParkUntil(reactor, handler, 2);
        Assert.Equal(2, pair.DrainServer());
        Assert.Equal(0, reactor.Poll(64));
        Assert.Equal(2, handler.Count);
    }

    [EpollFact]
    public void LevelTriggered_ReportsOnEveryPollWhileDataWaits()
    {
        using var reactor = new Reactor();
        using var pair = LoopbackPair.Create();
        var handler = new Recorder();
        reactor.Register(pair.Server.SafeHandle, handler, IoEvents.Readable, ReactorTrigger.Level);
        pair.PeerSend();
        pair.WaitReadable();
        for (int i = 1; i <= 5; i++)
        {
            Assert.Equal(1, reactor.Poll(64));
            Assert.Equal(i, handler.Count);
        }
        pair.DrainServer();
        Assert.Equal(0, reactor.Poll(64));
    }

    [EpollFact]
    public void OneShot_ReportsOnce_UntilModifyReArmsIt()
    {
        using var reactor = new Reactor();
        using var pair = LoopbackPair.Create();
        var handler = new Recorder();
        ReactorRegistration registration = reactor.Register(pair.Server.SafeHandle, handler, IoEvents.Readable, ReactorTrigger.OneShot);
        pair.PeerSend();
        pair.WaitReadable();
        Assert.Equal(1, reactor.Poll(64));
        pair.PeerSend();
        pair.WaitReadable(2);
        Assert.Equal(0, reactor.Poll(64)); // disarmed
        reactor.Modify(registration, IoEvents.Readable, ReactorTrigger.OneShot);
        Assert.Equal(1, reactor.Poll(64)); // re-armed while readable: reported
        Assert.Equal(2, handler.Count);
    }

    [EpollFact]
    public void Modify_ToWritable_ReportsWritable()
    {
        using var reactor = new Reactor();
        using var pair = LoopbackPair.Create();
        var handler = new Recorder();
        ReactorRegistration registration = reactor.Register(pair.Server.SafeHandle, handler, IoEvents.Readable);
        Assert.Equal(0, reactor.Poll(64));
        reactor.Modify(registration, IoEvents.Readable | IoEvents.Writable);
        Assert.Equal(1, reactor.Poll(64)); // an empty send buffer is writable at once
        Assert.True(handler.Last.HasFlag(IoEvents.Writable));
    }

    [EpollFact]
    public void PeerClose_ReportsReadableAndReadHangup()
    {
        using var reactor = new Reactor();
        using var pair = LoopbackPair.Create();
        var handler = new Recorder();
        reactor.Register(pair.Server.SafeHandle, handler, IoEvents.Readable | IoEvents.ReadHangup);
        pair.Client.Shutdown(SocketShutdown.Send);
        ParkUntil(reactor, handler, 1);
        Assert.True(handler.Last.HasFlag(IoEvents.ReadHangup), $"events {handler.Last}");
        Assert.Equal(0, pair.DrainServer()); // EOF
    }

    [EpollFact]
    public void Unregister_StopsEvents_AndPollStopsMakingSyscalls()
    {
        using var reactor = new Reactor();
        using var pair = LoopbackPair.Create();
        var handler = new Recorder();
        ReactorRegistration registration = reactor.Register(pair.Server.SafeHandle, handler, IoEvents.Readable, ReactorTrigger.Level);
        Assert.True(reactor.Unregister(registration));
        Assert.False(reactor.Unregister(registration));
        Assert.False(reactor.IsCurrent(registration));
        Assert.Throws<InvalidOperationException>(() => reactor.Modify(registration, IoEvents.Readable));
        pair.PeerSend();
        pair.WaitReadable();
        long calls = reactor.WaitCalls;
        Assert.Equal(0, reactor.Poll(64));
        Assert.Equal(calls, reactor.WaitCalls);
        Assert.Equal(0, handler.Count);
        Assert.Equal(0, reactor.RegisteredCount);
    }

    [EpollFact]
    public void EventsFetchedBeforeUnregister_AreDropped_NotDispatched()
    {
        // Both sockets are ready in one batch; whichever handler runs first unregisters the other, whose event is
        // already in the batch: it must be dropped by the generation check.
        using var reactor = new Reactor();
        using var a = LoopbackPair.Create();
        using var b = LoopbackPair.Create();
        var ha = new Recorder();
        var hb = new Recorder();
        ReactorRegistration ra = reactor.Register(a.Server.SafeHandle, ha, IoEvents.Readable, ReactorTrigger.Level);
        ReactorRegistration rb = reactor.Register(b.Server.SafeHandle, hb, IoEvents.Readable, ReactorTrigger.Level);
        ha.Then = _ => reactor.Unregister(rb);
        hb.Then = _ => reactor.Unregister(ra);
        a.PeerSend();
        b.PeerSend();
        a.WaitReadable();
        b.WaitReadable();
        Assert.Equal(1, reactor.Poll(64));
        Assert.Equal(1, ha.Count + hb.Count);
        Assert.Equal(1, reactor.StaleEvents);
        Assert.Equal(1, reactor.RegisteredCount);
    }

    [EpollFact]
    public void StaleEvent_AfterItsSlotWasReused_DoesNotReachTheNewHandler()
    {
        using var reactor = new Reactor();
        using var a = LoopbackPair.Create();
        using var b = LoopbackPair.Create();
        using var c = LoopbackPair.Create();
        var ha = new Recorder();
        var hb = new Recorder();
        var hc = new Recorder();
        ReactorRegistration ra = reactor.Register(a.Server.SafeHandle, ha, IoEvents.Readable, ReactorTrigger.Level);
        ReactorRegistration rb = reactor.Register(b.Server.SafeHandle, hb, IoEvents.Readable, ReactorTrigger.Level);
        ReactorRegistration rc = default;
        // The first handler to run ends the other registration and registers c (not readable), which takes the freed slot.
        ha.Then = _ => { if (!rc.IsValid) { reactor.Unregister(rb); rc = reactor.Register(c.Server.SafeHandle, hc, IoEvents.Readable); } };
        hb.Then = _ => { if (!rc.IsValid) { reactor.Unregister(ra); rc = reactor.Register(c.Server.SafeHandle, hc, IoEvents.Readable); } };
        a.PeerSend();
        b.PeerSend();
        a.WaitReadable();
        b.WaitReadable();
        Assert.Equal(1, reactor.Poll(64));
        Assert.Equal(0, hc.Count);
        Assert.Equal(1, reactor.StaleEvents);
        Assert.True(rc.Slot == ra.Slot || rc.Slot == rb.Slot, "the freed slot was reused");
        Assert.NotEqual(rc, ra);
        Assert.NotEqual(rc, rb);
    }

    [EpollFact]
    public void ManyDescriptors_EachReadinessDispatchedOnce_AndPollStaysWithinItsBound()
    {
        const int Count = 200, Bound = 16;
        using var listener = LoopbackPair.Listen(Count);
        var pairs = new List<LoopbackPair>();
        using var reactor = new Reactor(batch: 64);
        try
        {
            var handlers = new Recorder[Count];
            for (int i = 0; i < Count; i++)
            {
                pairs.Add(LoopbackPair.Create(listener));
                handlers[i] = new Recorder();
                reactor.Register(pairs[i].Server.SafeHandle, handlers[i], IoEvents.Readable);
            }
            Assert.Equal(Count, reactor.RegisteredCount);
            foreach (var p in pairs) p.PeerSend();
            foreach (var p in pairs) p.WaitReadable();
            int total = 0, polls = 0;
            while (total < Count)
            {
                int n = reactor.Poll(Bound);
                Assert.InRange(n, 0, Bound);
                Assert.True(n > 0, $"Poll found nothing with {Count - total} readiness events outstanding");
                total += n;
                polls++;
            }
            Assert.Equal(0, reactor.Poll(Bound));
            Assert.All(handlers, h => Assert.Equal(1, h.Count));
            Assert.True(polls >= Count / Bound);
        }
        finally
        {
            foreach (var p in pairs) p.Dispose();
        }
    }

    [EpollFact]
    public void HandlerThrows_ThePollThrows_AndTheRestOfTheBatchIsDispatchedNext()
    {
        using var reactor = new Reactor();
        var pairs = Enumerable.Range(0, 4).Select(_ => LoopbackPair.Create()).ToArray();
        try
        {
            var handlers = pairs.Select(_ => new Recorder()).ToArray();
            for (int i = 0; i < pairs.Length; i++) reactor.Register(pairs[i].Server.SafeHandle, handlers[i], IoEvents.Readable);
            bool thrown = false;
            foreach (var h in handlers) h.Then = _ => { if (!thrown) { thrown = true; throw new InvalidOperationException("handler failed"); } };
            foreach (var p in pairs) p.PeerSend();
            foreach (var p in pairs) p.WaitReadable();
            Assert.Throws<InvalidOperationException>(() => reactor.Poll(64));
            Assert.True(reactor.HasPendingEvents);
            Assert.Equal(3, reactor.Poll(64));
            Assert.All(handlers, h => Assert.Equal(1, h.Count));
        }
        finally
        {
            foreach (var p in pairs) p.Dispose();
        }
    }

    [EpollFact]
    public void Wake_FromAnotherThread_EndsAParkWithoutTimeout()
    {
        using var reactor = new Reactor();
        using var parking = new ManualResetEventSlim();
        using var returned = new ManualResetEventSlim();
        var owner = new Thread(() =>
        {
            parking.Set();
            reactor.Park(-1);
            returned.Set();
        }) { IsBackground = true, Name = "reactor owner" };
        owner.Start();
        parking.WaitOrFail("the owner to start parking");
        // Whether the wake lands before or during the epoll_wait, the park must end.
        reactor.Wake();
        returned.WaitOrFail("Park(-1) to return after Wake (a lost wake-up)");
        owner.Join();
        Assert.Equal(1, reactor.WakesReceived);
    }

    [EpollFact]
    public void Wake_BeforePark_MakesTheParkReturnAtOnce()
    {
        using var reactor = new Reactor();
        reactor.Wake();
        reactor.Park(HangNs); // only the pending wake can end this before the hang bound
        Assert.Equal(1, reactor.WakesReceived);
        // The wake is consumed: the next park sleeps its timeout.
        reactor.Park(1);
        Assert.Equal(1, reactor.WakesReceived);
    }

    [EpollFact]
    public void Wake_SeenByPoll_IsKeptForTheNextPark()
    {
        using var reactor = new Reactor();
        using var pair = LoopbackPair.Create();
        reactor.Register(pair.Server.SafeHandle, new Recorder(), IoEvents.Readable);
        reactor.Wake();
        Assert.Equal(0, reactor.Poll(64)); // drains the eventfd (no handler runs for it)
        Assert.Equal(1, reactor.WakesReceived);
        long calls = reactor.WaitCalls;
        reactor.Park(HangNs); // the permit: returns without sleeping
        Assert.Equal(calls, reactor.WaitCalls);
    }

    [EpollFact]
    public void Park_WithMaxEventsZero_OnlyWaits_AndLeavesTheReadinessForPoll()
    {
        using var reactor = new Reactor();
        using var pair = LoopbackPair.Create();
        var handler = new Recorder();
        reactor.Register(pair.Server.SafeHandle, handler, IoEvents.Readable);
        pair.PeerSend();
        pair.WaitReadable();
        reactor.Wake(); // the same batch holds the wake and the readiness
        Assert.Equal(0, reactor.Park(HangNs, maxEvents: 0));
        Assert.Equal(0, handler.Count);
        Assert.True(reactor.HasPendingEvents);
        Assert.Equal(1, reactor.WakesReceived);
        Assert.Equal(1, reactor.Poll(64));
        Assert.Equal(1, handler.Count);
        // The park consumed the wake: the next park really waits (a syscall), it does not return on a stale permit.
        long calls = reactor.WaitCalls;
        reactor.Park(1);
        Assert.True(reactor.WaitCalls > calls);
        Assert.Equal(1, reactor.WakesReceived);
    }

    /// <summary>
    /// Thousands of wake/park round trips between two threads with random pauses, so wakes land before, during and
    /// after the owner's epoll_wait: a single lost wake-up leaves the owner parked and fires the hang detector.
    /// </summary>
    [EpollFact]
    public void WakePark_RoundTrips_NeverLoseAWakeUp()
    {
        const int Rounds = 3000;
        using var reactor = new Reactor();
        int posted = 0;
        using var acked = new SemaphoreSlim(0);
        Exception? failure = null;
        var owner = new Thread(() =>
        {
            try
            {
                int seen = 0;
                while (seen < Rounds)
                {
                    // Look for work, then park: the wake for work posted after the look is pending in the eventfd.
                    while (Volatile.Read(ref posted) == seen) reactor.Park(-1);
                    seen++;
                    acked.Release();
                }
            }
            catch (Exception e)
            {
                failure = e;
                acked.Release();
            }
        }) { IsBackground = true, Name = "reactor owner" };
        owner.Start();
        var random = new Random(5);
        for (int i = 0; i < Rounds; i++)
        {
            Thread.SpinWait(random.Next(0, 2000));
            Interlocked.Increment(ref posted); // publish, then wake (the CPU's order); Interlocked orders the two
            reactor.Wake();
            Assert.True(acked.Wait(TestUtil.Hang), $"round {i}: the owner never woke (lost wake-up)");
            Assert.Null(failure);
        }
        Assert.True(owner.Join(TestUtil.Hang));
    }

    /// <summary>
    /// Edge-triggered as a server uses it: a peer thread keeps writing small chunks to several sockets while the owner
    /// parks and each handler reads until WouldBlock. A lost edge would leave bytes unread and the park hanging (the
    /// hang bound fails the test); every byte must arrive.
    /// </summary>
    [EpollFact]
    public void EdgeTriggered_ReadUntilWouldBlock_SeesEveryByte_WhileAPeerKeepsWriting()
    {
        const int Pairs = 8, Chunks = 4000;
        using var reactor = new Reactor();
        var pairs = Enumerable.Range(0, Pairs).Select(_ => LoopbackPair.Create()).ToArray();
        try
        {
            long received = 0;
            var handlers = new DrainingHandler[Pairs];
            for (int i = 0; i < Pairs; i++)
            {
                handlers[i] = new DrainingHandler(pairs[i].Server);
                reactor.Register(pairs[i].Server.SafeHandle, handlers[i], IoEvents.Readable);
            }
            long expected = 0;
            var sizes = new int[Chunks];
            var random = new Random(17);
            for (int i = 0; i < Chunks; i++) expected += sizes[i] = random.Next(1, 200);
            Exception? failure = null;
            var writer = new Thread(() =>
            {
                try
                {
                    var chunk = new byte[200];
                    for (int i = 0; i < Chunks; i++)
                    {
                        Socket client = pairs[i % Pairs].Client;
                        int offset = 0;
                        while (offset < sizes[i])
                        {
                            int n = client.Send(chunk.AsSpan(offset, sizes[i] - offset), SocketFlags.None, out SocketError error);
                            if (error == SocketError.WouldBlock) { Thread.Yield(); continue; } // the reader is behind
                            Assert.Equal(SocketError.Success, error);
                            offset += n;
                        }
                    }
                }
                catch (Exception e)
                {
                    failure = e;
                }
            }) { IsBackground = true, Name = "peer writer" };
            writer.Start();
            var bound = Stopwatch.StartNew();
            while (received < expected && failure is null)
            {
                reactor.Park(HangNs);
                received = handlers.Sum(h => h.Bytes);
                if (bound.Elapsed > TestUtil.Hang) throw new Xunit.Sdk.XunitException($"Hang detector: {expected - received} bytes never reported");
            }
            Assert.True(writer.Join(TestUtil.Hang));
            Assert.Null(failure);
            Assert.Equal(expected, received);
        }
        finally
        {
            foreach (var p in pairs) p.Dispose();
        }
    }

    private sealed class DrainingHandler(Socket socket) : IReadinessHandler
    {
        private readonly byte[] _buffer = new byte[1024];
        public long Bytes;

        public void OnReadiness(ReactorRegistration registration, IoEvents events)
        {
            while (true)
            {
                int n = socket.Receive(_buffer, SocketFlags.None, out SocketError error);
                if (error == SocketError.WouldBlock || n == 0) return;
                Assert.Equal(SocketError.Success, error);
                Bytes += n;
            }
        }
    }

    [EpollFact]
    public void Park_WithATimeout_ReturnsNoSoonerThanTheTimeout()
    {
        using var reactor = new Reactor();
        foreach (long ns in new long[] { 1, 1_500_000, 20_000_000 })
        {
            long start = Stopwatch.GetTimestamp();
            reactor.Park(ns);
            TimeSpan elapsed = Stopwatch.GetElapsedTime(start);
            Assert.True(elapsed.Ticks * 100 >= ns, $"Park({ns} ns) returned after {elapsed.TotalMilliseconds} ms");
        }
        Assert.Equal(0, reactor.WakesReceived);
    }

    [EpollFact]
    public void WakeAfterDispose_DoesNothing()
    {
        var reactor = new Reactor();
        reactor.Dispose();
        reactor.Wake();
        Assert.Throws<ObjectDisposedException>(() => reactor.Poll(1));
    }

    [EpollFact]
    public void Register_BadDescriptor_ThrowsWithTheErrno()
    {
        using var reactor = new Reactor();
        var error = Assert.Throws<System.ComponentModel.Win32Exception>(() => reactor.Register(1_000_000, new Recorder(), IoEvents.Readable));
        Assert.Equal(Epoll.EBadF, error.NativeErrorCode);
        Assert.Equal(0, reactor.RegisteredCount);
    }

    [EpollFact]
    public void SocketDisposedWhileRegistered_DoesNotHang_AndUnregisterStillFreesTheSlot()
    {
        using var reactor = new Reactor();
        var pair = LoopbackPair.Create();
        ReactorRegistration registration = reactor.Register(pair.Server.SafeHandle, new Recorder(), IoEvents.Readable);
        pair.Dispose(); // the reactor holds no handle reference, so Socket.Dispose does not wait for one
        Assert.True(reactor.Unregister(registration));
        Assert.Equal(0, reactor.RegisteredCount);
    }
}
