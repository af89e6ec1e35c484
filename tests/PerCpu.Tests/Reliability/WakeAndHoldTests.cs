using System.Runtime.CompilerServices;
namespace PerCpu.Tests.Reliability;

/// <summary>Issue 11 item 2 (a sender that must wait for room wakes the target) and C (no task runs on a held CPU).</summary>
[Collection("Stress")]
public sealed class WakeAndHoldTests
{
    private static void NoTick(CpuRuntimeOptions o)
    {
        // A parked CPU would only look again after an hour: whatever runs did so because somebody woke it.
        o.TickInterval = TimeSpan.FromHours(1);
        o.StallThreshold = Timeout.InfiniteTimeSpan; // the watchdog re-wakes CPUs that leave work undrained: not what these tests look at
        o.WaitWarning = TimeSpan.FromMinutes(5);
        o.WaitTimeout = TimeSpan.FromMinutes(10);
    }

    private static async Task UntilParked(Cpu cpu)
        => await Progress.Until(() => cpu.IsParked, () => 0, $"CPU {cpu.Id} to park");

    [Fact]
    public async Task Send_AfterPassiveEntriesFillMoreThanHalfTheRing_WakesTheParkedTarget()
    {
        const int Capacity = 64;
        await using var runtime = TestUtil.Start(2, o => { o.FifoCapacity = Capacity; NoTick(o); });
        var ran = new StrongBox<long>();
        await UntilParked(runtime[1]);
        Task sender = runtime[0].InvokeAsync(() =>
        {
            Cpu target = Cpu.Current!.Runtime[1];
            for (int i = 0; i < Capacity / 2 + 8; i++) target.SendPassive(static (o, _) => Interlocked.Increment(ref ((StrongBox<long>)o!).Value), ran);
            target.Send(static (o, _) => Interlocked.Increment(ref ((StrongBox<long>)o!).Value), ran);
        }).AsTask();
        await Progress.Await(sender, () => Volatile.Read(ref ran.Value), what: "the send that waits for room");
        await Progress.Until(() => Volatile.Read(ref ran.Value) == Capacity / 2 + 9, () => Volatile.Read(ref ran.Value), "every message to run");
    }

    /// <summary>
    /// A refused TrySend wakes the target: here from outside, on an inbox that holds only passive entries (which wake
    /// nobody) while the target sleeps with no tick to speak of. Before, the refusal left them there for the tick.
    /// </summary>
    [Fact]
    public async Task TrySend_RefusedByAnInboxOfPassiveEntries_WakesTheParkedTarget()
    {
        const int Capacity = 32;
        await using var runtime = TestUtil.Start(2, o => { o.InboxCapacity = Capacity; NoTick(o); });
        var ran = new StrongBox<long>();
        await UntilParked(runtime[1]);
        for (int i = 0; i < Capacity; i++) runtime[1].SendPassive(static (o, _) => Interlocked.Increment(ref ((StrongBox<long>)o!).Value), ran);
        Assert.Equal(0, Volatile.Read(ref ran.Value)); // passive: nobody woke CPU 1
        Assert.False(runtime[1].TrySend(static (_, _) => { }));
        await Progress.Until(() => Volatile.Read(ref ran.Value) == Capacity, () => Volatile.Read(ref ran.Value), "the refused inbox to drain");
    }

    [Fact]
    public async Task OutsideSend_OnAnInboxFullOfPassiveEntries_WakesTheParkedTarget()
    {
        const int Capacity = 32;
        await using var runtime = TestUtil.Start(2, o => { o.InboxCapacity = Capacity; NoTick(o); });
        var ran = new StrongBox<long>();
        await UntilParked(runtime[1]);
        Task sender = Task.Factory.StartNew(() =>
        {
            for (int i = 0; i < Capacity + 8; i++) runtime[1].SendPassive(static (o, _) => Interlocked.Increment(ref ((StrongBox<long>)o!).Value), ran);
        }, TaskCreationOptions.LongRunning);
        await Progress.Await(sender, () => Volatile.Read(ref ran.Value), what: "the outside sender on a full inbox");
        Assert.True(Volatile.Read(ref ran.Value) >= 8);
    }

    /// <summary>
    /// Issue 11 C: a hold accepted while soft interrupts run (they process IPIs between handlers) stops the task phase
    /// of the same pass. A handler on CPU 1 waits until an outside master's hold request is in CPU 1's inbox; a task
    /// queued before must not run until the scope is disposed.
    /// </summary>
    [Fact]
    public async Task HoldAcceptedDuringSoftInterrupts_RunsNoTaskOfThatPass()
    {
        await using var runtime = TestUtil.Start(2, TestUtil.Quiet);
        using var inHandler = new ManualResetEventSlim();
        long taskRan = 0;
        using SoftInterrupt handler = runtime.Establish(SoftLevel.Net, static s =>
        {
            var (entered, rt) = ((ManualResetEventSlim, CpuRuntime))s!;
            entered.Set();
            var spinner = new SpinWait();
            while (!rt[1].Inbox.HasWork) spinner.SpinOnce(sleep1Threshold: -1);
        }, (inHandler, runtime));
        await runtime[1].InvokeAsync(() =>
        {
            handler.Schedule();
            Cpu.Current!.Post(() => Interlocked.Increment(ref taskRan));
        });
        inHandler.WaitOrFail("the handler to start");
        using (runtime.Interlock(CpuMask.Of(1)))
        {
            Assert.Equal(0, Volatile.Read(ref taskRan));
        }
        await Progress.Until(() => Volatile.Read(ref taskRan) == 1, () => 0, "the task to run after the hold");
    }
}
