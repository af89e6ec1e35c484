namespace PerCpu.Tests.SoftInterrupts;

/// <summary>
/// Issue 11 item 7: disposing a soft interrupt from a CPU of another runtime. That CPU is an outside thread to the
/// soft interrupt's runtime; before the fix, the barrier send refused it ("CPU 0 of another CpuRuntime cannot send")
/// after the handle had been marked dying, which left it half-disposed: schedules refused, slot never freed.
/// </summary>
public sealed class ForeignCpuDisposeTests
{
    private sealed class Counter
    {
        public int Value;
    }

    private static readonly Action<object?> s_count = static c => Interlocked.Increment(ref ((Counter)c!).Value);

    private static void SpinUntil(Func<bool> condition, string what)
    {
        if (!SpinWait.SpinUntil(condition, TestUtil.Hang)) throw new Xunit.Sdk.XunitException($"Hang detector fired: {what}");
    }

    [Fact]
    public async Task Dispose_OnACpuOfAnotherRuntime_Disestablishes_AndFreesTheSlot()
    {
        await using var owner = TestUtil.Start(2, o => o.MaxSoftInterrupts = 1);
        await using var other = TestUtil.Start(1);
        var counter = new Counter();
        SoftInterrupt si = owner.Establish(SoftLevel.Net, s_count, counter);
        si.ScheduleOn(owner[1]);
        SpinUntil(() => Volatile.Read(ref counter.Value) == 1, "the handler to run once");

        await other[0].InvokeAsync(() => si.Dispose()).AsTask().WithHangDetector();

        Assert.Throws<ObjectDisposedException>(() => si.ScheduleOn(owner[0]));
        // MaxSoftInterrupts = 1: establishing again proves the slot was freed.
        using SoftInterrupt again = owner.Establish(SoftLevel.Net, s_count, counter);
        again.ScheduleOn(owner[0]);
        SpinUntil(() => Volatile.Read(ref counter.Value) == 2, "the new handler to run");
    }

    [Fact]
    public async Task DisposeAsync_OnACpuOfAnotherRuntime_Disestablishes_AndFreesTheSlot()
    {
        await using var owner = TestUtil.Start(2, o => o.MaxSoftInterrupts = 1);
        await using var other = TestUtil.Start(1);
        var counter = new Counter();
        SoftInterrupt si = owner.Establish(SoftLevel.Bio, s_count, counter);
        Cpu? resumedOn = null;

        await other[0].InvokeAsync(async () =>
        {
            await si.DisposeAsync();
            resumedOn = Cpu.Current; // the caller's own CPU, as after any await there
        }).AsTask().WithHangDetector();

        Assert.Same(other[0], resumedOn);
        Assert.Throws<ObjectDisposedException>(() => si.ScheduleOn(owner[0]));
        using SoftInterrupt again = owner.Establish(SoftLevel.Bio, s_count, counter);
    }

    /// <summary>The barrier still does its job from a foreign CPU: a run pending (not started) on a held-up CPU never happens.</summary>
    [Fact]
    public async Task Dispose_OnACpuOfAnotherRuntime_DropsARunPendingBehindABlockedCpu()
    {
        await using var owner = TestUtil.Start(2);
        await using var other = TestUtil.Start(1);
        var counter = new Counter();
        SoftInterrupt si = owner.Establish(SoftLevel.Clock, s_count, counter);
        using var release = new ManualResetEventSlim();
        using var scheduled = new ManualResetEventSlim();
        // CPU 1 schedules the handler and then blocks inside the same IPI function: the handler is pending there.
        owner[1].Send(static (o, _) =>
        {
            var (s, done, r) = ((SoftInterrupt, ManualResetEventSlim, ManualResetEventSlim))o!;
            s.Schedule();
            done.Set();
            r.Wait();
        }, (si, scheduled, release));
        scheduled.WaitOrFail("CPU 1 to schedule the handler");

        Task dispose;
        try
        {
            dispose = other[0].InvokeAsync(() => si.Dispose()).AsTask();
            // Dispose cannot return before CPU 1 has run its barrier, which queues behind the blocked function.
            SpinUntil(() => si.BarrierRemaining == 1 || dispose.IsCompleted, "every CPU but the blocked one to run the barrier");
            if (dispose.IsFaulted) await dispose; // fail with the disposal's own exception
            Assert.False(dispose.IsCompleted);
        }
        finally
        {
            release.Set(); // a failure above must not leave CPU 1 blocked: the runtime's disposal would wait for it forever
        }
        await dispose.WithHangDetector();
        await owner[1].InvokeAsync(static () => { }).AsTask().WithHangDetector(); // one more pass on CPU 1
        Assert.Equal(0, Volatile.Read(ref counter.Value));
    }
}
