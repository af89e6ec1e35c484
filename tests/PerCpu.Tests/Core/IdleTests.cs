using System.Diagnostics;

namespace PerCpu.Tests.Core;

/// <summary>
/// The README's idle behaviour: an idle CPU spins for <see cref="CpuRuntimeOptions.IdleSpin"/>, then parks; a parked
/// CPU is woken by a normal send and picks up passive messages on its tick. Observed through the CPU's idle state
/// (<see cref="IdleProbe"/>) and its wake counters, never through how long something took, except for lower bounds that
/// load can only make longer.
/// </summary>
public sealed class IdleTests
{
    /// <summary>
    /// With an idle spin of five minutes, a CPU that has nothing to do never parks while the test watches it (100 ms
    /// by the test's clock, however little of it the CPU got), and a send then finds it awake: no wake is sent or
    /// received. A CPU that ignored IdleSpin would be seen parked, or would need the wake.
    /// </summary>
    [Fact]
    public async Task IdleCpu_Spins_WhileWithinIdleSpin()
    {
        await using var runtime = TestUtil.Start(2, o => { o.IdleSpin = TimeSpan.FromMinutes(5); o.TickInterval = TimeSpan.FromHours(1); o.StallThreshold = Timeout.InfiniteTimeSpan; });
        Cpu cpu = runtime[1];
        await cpu.InvokeAsync(static () => { }).AsTask().WithHangDetector(); // CPU 1 has run something; now it idles
        long watched = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 10;
        int looks = 0;
        while (Stopwatch.GetTimestamp() < watched)
        {
            Assert.False(IdleProbe.IsParked(cpu), $"CPU 1 parked within its 5-minute idle spin (look {looks})");
            looks++;
            Thread.Yield();
        }
        using var ran = new ManualResetEventSlim();
        cpu.Send(static (o, _) => ((ManualResetEventSlim)o!).Set(), ran);
        ran.WaitOrFail("message to the spinning CPU");
        Assert.Equal(0, cpu.GetStatistics().WakesReceived);
        Assert.Equal(0, runtime.GetStatistics().WakesSent);
    }

    /// <summary>
    /// With a short idle spin, an idle CPU does park (it goes to sleep in its futex), no sooner than IdleSpin after the
    /// last work it did (a lower bound: load can only make it later), and then a send must wake it: exactly one wake
    /// sent and one received.
    /// </summary>
    [Fact]
    public async Task IdleCpu_ParksAfterIdleSpin_AndASendWakesIt()
    {
        TimeSpan spin = TimeSpan.FromMilliseconds(20);
        await using var runtime = TestUtil.Start(2, o => { o.IdleSpin = spin; o.TickInterval = TimeSpan.FromHours(1); o.StallThreshold = Timeout.InfiniteTimeSpan; });
        Cpu cpu = runtime[1];
        long lastWork = await cpu.InvokeAsync(static () => Stopwatch.GetTimestamp()).AsTask().WithHangDetector();
        IdleProbe.WaitUntilAsleep(cpu);
        TimeSpan idleBeforePark = Stopwatch.GetElapsedTime(lastWork);
        Assert.True(idleBeforePark >= spin, $"CPU 1 was asleep {idleBeforePark.TotalMilliseconds:F3} ms after its last work, within its {spin.TotalMilliseconds} ms idle spin");
        runtime.ResetStatistics();
        using var ran = new ManualResetEventSlim();
        cpu.Send(static (o, _) => ((ManualResetEventSlim)o!).Set(), ran);
        ran.WaitOrFail("message to the parked CPU");
        Assert.Equal(1, cpu.GetStatistics().WakesReceived);
        Assert.Equal(1, runtime.GetStatistics().WakesSent);
    }

    /// <summary>
    /// The <see cref="CpuRuntimeOptions.TickInterval"/> bound, from a thread that is not a CPU (through the inbox): a
    /// passive message published while the target sleeps (tickless: with no timer armed, indefinitely) does not wake it
    /// at once; the send arms a deferred wake one tick later, and that one wake delivers it. No upper bound on the time
    /// is asserted (load can stretch it); with a tick of an hour the test would hang instead. If the CPU woke between
    /// the two looks at it for another reason, the attempt does not count and the test tries again.
    /// </summary>
    [Fact]
    public async Task ParkedCpu_PicksUpAPassiveMessage_OnItsTick()
    {
        await using var runtime = TestUtil.Start(2, o => { o.IdleSpin = TimeSpan.Zero; o.TickInterval = TimeSpan.FromMilliseconds(10); o.StallThreshold = Timeout.InfiniteTimeSpan; });
        Cpu cpu = runtime[1];
        for (int attempt = 1; ; attempt++)
        {
            Assert.True(attempt <= 100, "CPU 1's tick fired between the two looks a hundred times in a row");
            using var ran = new ManualResetEventSlim();
            var wakesAtRun = new long[] { -1 };
            runtime.ResetStatistics();
            IdleProbe.WaitUntilAsleep(cpu);
            cpu.SendPassive(static (o, _) =>
            {
                var (ran, wakes) = ((ManualResetEventSlim, long[]))o!;
                wakes[0] = Cpu.Current!.GetStatistics().WakesReceived;
                ran.Set();
            }, (ran, wakesAtRun));
            bool asleepAfterSend = IdleProbe.IsAsleep(cpu);
            ran.WaitOrFail("passive message to the sleeping CPU");
            if (!asleepAfterSend) continue;
            Assert.Equal(1, wakesAtRun[0]); // the deferred tick, and nothing before it
            // The deferred wake is counted by the timer thread after its wake succeeded, so possibly after the message ran.
            await Progress.Until(() => runtime.GetStatistics().WakesSent >= 1, () => 0, "the deferred wake to be counted");
            CpuStatistics all = runtime.GetStatistics();
            Assert.Equal(1, all.Passive);
            Assert.Equal(1, all.WakesSent); // the deferred wake (counted with the outside senders')
            Assert.Equal(1, all.WakesReceived);
            return;
        }
    }
}
