namespace PerCpu.Tests.Core;

[Collection("Stress")]
public sealed class WakeTests
{
    /// <summary>
    /// No lost wake-up: the target parks at once (no idle spin) and a sender must always wake it. Thousands of
    /// round trips with random pauses land sends on every side of the park/re-check window; a lost wake-up hangs
    /// and fires the hang detector.
    /// </summary>
    [Fact]
    public async Task ParkedCpu_IsAlwaysWokenBySend_FromOutside()
    {
        await using var runtime = TestUtil.Start(2, o => { o.IdleSpin = TimeSpan.Zero; o.TickInterval = TimeSpan.FromSeconds(30); });
        var random = new Random(1234);
        using var ran = new SemaphoreSlim(0);
        for (int i = 0; i < 3000; i++)
        {
            Thread.SpinWait(random.Next(0, 2000));
            runtime[i & 1].Send(static (o, _) => ((SemaphoreSlim)o!).Release(), ran);
            Assert.True(await ran.WaitAsync(TestUtil.Hang), $"round trip {i}: the target was never woken (lost wake-up)");
        }
        Assert.True(runtime.GetStatistics().WakesReceived > 0);
    }

    [Fact]
    public async Task ParkedCpu_IsAlwaysWokenBySend_FromAnotherCpu()
    {
        // A tick of 30 s: only a real wake-up can deliver within the hang detector's minute many times over.
        await using var runtime = TestUtil.Start(2, o => { o.IdleSpin = TimeSpan.Zero; o.TickInterval = TimeSpan.FromSeconds(30); });
        var state = new PingState(runtime, 2000);
        runtime[0].Send(static (o, _) => ((PingState)o!).Ping(), state);
        await Progress.Await(state.Done.Task, () => Volatile.Read(ref state.Count));
        Assert.Equal(2000, state.Count);
        Assert.True(runtime.GetStatistics().WakesSent > 0);
    }

    private sealed class PingState(CpuRuntime runtime, int rounds)
    {
        public readonly TaskCompletionSource Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Count;
        private readonly Random _random = new(99);

        public void Ping()
        {
            if (++Count == rounds)
            {
                Done.SetResult();
                return;
            }
            // A random pause lets the other CPU reach every point of its park sequence.
            Thread.SpinWait(_random.Next(0, 3000));
            Cpu other = runtime[1 - Cpu.Current!.Id];
            other.Send(static (o, _) => ((PingState)o!).Ping(), this);
        }
    }

    [Fact]
    public async Task SendToBusyCpu_AvoidsTheWake()
    {
        // Poll mode: the target never parks, so no send needs a wake-up.
        await using var runtime = TestUtil.Start(2, o => o.PollMode = true);
        await runtime[0].InvokeAsync(() =>
        {
            long seq = 0;
            for (int i = 0; i < 10_000; i++) seq = runtime[1].Send(static (_, _) => { });
            runtime[1].WaitFor(seq);
        }).AsTask().WithHangDetector();
        CpuStatistics s = runtime[0].GetStatistics();
        Assert.Equal(0, s.WakesSent);
        Assert.True(s.Avoided >= 10_000, $"avoided {s.Avoided}");
    }

    /// <summary>
    /// A passive message never wakes its target; a parked target still runs it within a tick. Tickless idle: nothing
    /// wakes a parked CPU periodically, so the passive send arms a deferred wake one TickInterval later (issue 12). CPU 1
    /// is asleep (in its futex) when CPU 0 publishes the message, and still asleep right after; the message then runs
    /// with CPU 0 having woken nobody, and CPU 1 having received exactly one wake: the deferred tick. If CPU 1 woke
    /// between the two looks for another reason, the attempt does not count and the test tries again.
    /// </summary>
    [Fact]
    public async Task PassiveSend_RunsOnTheDeferredTick_WithoutTheSenderWakingTheTarget()
    {
        await using var runtime = TestUtil.Start(2, o => { o.IdleSpin = TimeSpan.Zero; o.TickInterval = TimeSpan.FromMilliseconds(20); o.StallThreshold = Timeout.InfiniteTimeSpan; });
        var wakesAtRun = new long[1];
        for (int attempt = 1; ; attempt++)
        {
            Assert.True(attempt <= 100, "CPU 1's tick fired between the two looks a hundred times in a row");
            using var ran = new ManualResetEventSlim();
            runtime.ResetStatistics();
            // CPU 0 is busy with this call while CPU 1 sleeps, so it runs the wait too: it sends nothing meanwhile.
            bool asleepAfterSend = await runtime[0].InvokeAsync(() =>
            {
                Cpu target = runtime[1];
                IdleProbe.WaitUntilAsleep(target);
                target.SendPassive(static (o, _) =>
                {
                    var (ran, wakes) = ((ManualResetEventSlim, long[]))o!;
                    wakes[0] = Cpu.Current!.GetStatistics().WakesReceived;
                    ran.Set();
                }, (ran, wakesAtRun));
                return IdleProbe.IsAsleep(target);
            }).AsTask().WithHangDetector();
            ran.WaitOrFail("passive message");
            if (!asleepAfterSend) continue;
            CpuStatistics s = runtime[0].GetStatistics();
            Assert.Equal(1, s.Passive);
            Assert.Equal(0, s.WakesSent); // the sender woke nobody
            Assert.Equal(1, wakesAtRun[0]); // one wake before the message ran: the deferred tick
            Assert.Equal(1, runtime[1].GetStatistics().WakesReceived);
            return;
        }
    }
}
