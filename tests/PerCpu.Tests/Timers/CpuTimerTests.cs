using System.Diagnostics;

namespace PerCpu.Tests.Timers;

/// <summary>
/// CpuTimer (callout on the Clock level) on real CPU threads. Nothing here depends on timing: elapsed times are only
/// bounded from below, "never fires" is proven by a later sentinel timer that the wheel must fire after the stopped
/// one's due time, and waits fail only for lack of progress.
/// </summary>
[Collection("Stress")]
public sealed class CpuTimerTests
{
    private static CpuRuntime Start(int cpus = 2) => TestUtil.Start(cpus, TestUtil.Quiet);

    private sealed class Record
    {
        public readonly TaskCompletionSource<(long Elapsed, Cpu? Cpu)> Fired = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public long Start;
        public int Count;
    }

    [Fact]
    public async Task Timer_NeverFiresEarly_AndFiresOnItsCpu()
    {
        await using var runtime = Start();
        TimeSpan due = TimeSpan.FromMilliseconds(30);
        var record = new Record();
        var timer = new CpuTimer(runtime[1], static s =>
        {
            var r = (Record)s!;
            r.Fired.TrySetResult((Stopwatch.GetTimestamp() - r.Start, Cpu.Current));
        }, record);
        await runtime[1].InvokeAsync(() =>
        {
            record.Start = Stopwatch.GetTimestamp(); // before arming
            timer.Start(due);
        }).AsTask().WithHangDetector();
        (long elapsed, Cpu? cpu) = await record.Fired.Task.WithHangDetector();
        Assert.Same(runtime[1], cpu);
        Assert.True(Stopwatch.GetElapsedTime(0, elapsed) >= due, $"fired after {Stopwatch.GetElapsedTime(0, elapsed).TotalMilliseconds} ms, due {due.TotalMilliseconds} ms");
        Assert.False(await runtime[1].InvokeAsync(() => timer.IsArmed));
    }

    [Fact]
    public async Task ManyTimers_NeverFireEarly()
    {
        await using var runtime = Start();
        const int N = 200;
        var starts = new long[N];
        var late = new long[N];
        int done = 0;
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var timers = new CpuTimer[N];
        await runtime[0].InvokeAsync(() =>
        {
            for (int i = 0; i < N; i++)
            {
                int id = i;
                timers[i] = new CpuTimer(runtime[0], _ =>
                {
                    late[id] = Stopwatch.GetTimestamp() - starts[id];
                    if (++done == N) all.SetResult();
                });
                starts[i] = Stopwatch.GetTimestamp();
                timers[i].Start(TimeSpan.FromMilliseconds(i % 70)); // levels 0 and 1 of the wheel
            }
        }).AsTask().WithHangDetector();
        await Progress.Await(all.Task, () => Volatile.Read(ref done), what: "every timer to fire");
        for (int i = 0; i < N; i++)
            Assert.True(Stopwatch.GetElapsedTime(0, late[i]) >= TimeSpan.FromMilliseconds(i % 70), $"timer {i} fired early");
    }

    [Fact]
    public async Task Timer_RunsAtClockLevel_AfterHigherLevelsScheduledInTheSamePass()
    {
        await using var runtime = Start();
        var order = new List<string>();
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using SoftInterrupt net = runtime.Establish(SoftLevel.Net, static s => ((List<string>)s!).Add("net"), order);
        using SoftInterrupt bio = runtime.Establish(SoftLevel.Bio, static s => ((List<string>)s!).Add("bio"), order);
        var timer = new CpuTimer(runtime[1], _ =>
        {
            order.Add("timer");
            done.SetResult();
        });
        await runtime[1].InvokeAsync(() =>
        {
            // Armed first and due at once, then two higher levels: all pending in the next pass, which runs them by level.
            timer.Start(TimeSpan.Zero);
            bio.Schedule();
            net.Schedule();
        }).AsTask().WithHangDetector();
        await done.Task.WithHangDetector();
        Assert.Equal(["net", "bio", "timer"], await runtime[1].InvokeAsync(() => order.ToArray()));
    }

    private sealed class Pair
    {
        public CpuTimer? A, B, Sentinel;
        public int AFired, BFired;
        public bool StopResult;
        public readonly TaskCompletionSource Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>A and B expire in the same softclock run; A's callback stops B, which must then not fire.</summary>
    [Fact]
    public async Task StopFromAnotherCallback_InTheSameExpiry_NeverFires()
    {
        await using var runtime = Start();
        var p = new Pair();
        p.A = new CpuTimer(runtime[1], static s =>
        {
            var q = (Pair)s!;
            q.AFired++;
            q.StopResult = q.B!.Stop();
        }, p);
        p.B = new CpuTimer(runtime[1], static s => ((Pair)s!).BFired++, p);
        p.Sentinel = new CpuTimer(runtime[1], static s => ((Pair)s!).Done.SetResult(), p);
        await runtime[1].InvokeAsync(() =>
        {
            // Both due now: expired together in the next softclock, A first (earlier due time, or arming order).
            p.A.Start(TimeSpan.Zero);
            p.B.Start(TimeSpan.Zero);
            p.Sentinel.Start(TimeSpan.FromMilliseconds(5)); // fires after anything due before it
        }).AsTask().WithHangDetector();
        await p.Done.Task.WithHangDetector();
        (int a, int b, bool stopped) = await runtime[1].InvokeAsync(() => (p.AFired, p.BFired, p.StopResult));
        Assert.Equal(1, a);
        Assert.True(stopped, "Stop of an expired, not yet fired timer returns true (it prevented the firing)");
        Assert.Equal(0, b);
    }

    [Fact]
    public async Task StopFromAnIpiFunction_BeforeItsDueTime_NeverFires()
    {
        await using var runtime = Start();
        var p = new Pair();
        p.B = new CpuTimer(runtime[1], static s => ((Pair)s!).BFired++, p);
        p.Sentinel = new CpuTimer(runtime[1], static s => ((Pair)s!).Done.SetResult(), p);
        await runtime[1].InvokeAsync(() => p.B.Start(TimeSpan.FromMilliseconds(20))).AsTask().WithHangDetector();
        bool stopped = await runtime[1].InvokeAsync(() =>
        {
            bool s = p.B.Stop();
            p.Sentinel.Start(TimeSpan.FromMilliseconds(40)); // due after B's due time
            return s;
        });
        await p.Done.Task.WithHangDetector();
        // Stop returns false only if B had fired already (the machine stalled the test for 20 ms between the calls).
        int fired = await runtime[1].InvokeAsync(() => p.BFired);
        Assert.Equal(stopped ? 0 : 1, fired);
        Assert.False(await runtime[1].InvokeAsync(() => p.B.Stop()));
    }

    [Fact]
    public async Task RestartedTimer_FiresOnce_ForTheLastStart()
    {
        await using var runtime = Start();
        var record = new Record();
        var timer = new CpuTimer(runtime[1], static s =>
        {
            var r = (Record)s!;
            r.Count++;
            r.Fired.TrySetResult((Stopwatch.GetTimestamp() - r.Start, Cpu.Current));
        }, record);
        var sentinelDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sentinel = new CpuTimer(runtime[1], static s => ((TaskCompletionSource)s!).SetResult(), sentinelDone);
        await runtime[1].InvokeAsync(() =>
        {
            timer.Start(TimeSpan.FromMilliseconds(5));
            record.Start = Stopwatch.GetTimestamp();
            timer.Start(TimeSpan.FromMilliseconds(25)); // re-arm: the 5 ms expiry is gone
            sentinel.Start(TimeSpan.FromMilliseconds(60));
        }).AsTask().WithHangDetector();
        (long elapsed, _) = await record.Fired.Task.WithHangDetector();
        await sentinelDone.Task.WithHangDetector();
        Assert.True(Stopwatch.GetElapsedTime(0, elapsed) >= TimeSpan.FromMilliseconds(25));
        Assert.Equal(1, await runtime[1].InvokeAsync(() => record.Count));
    }

    [Fact]
    public async Task PeriodicTimer_ReArmingInItsCallback_Works()
    {
        await using var runtime = Start();
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int count = 0;
        CpuTimer? timer = null;
        timer = new CpuTimer(runtime[0], _ =>
        {
            if (++count == 20) done.SetResult();
            else timer!.Start(TimeSpan.FromMilliseconds(1));
        });
        await runtime[0].InvokeAsync(() => timer.Start(TimeSpan.FromMilliseconds(1))).AsTask().WithHangDetector();
        await Progress.Await(done.Task, () => Volatile.Read(ref count), what: "a periodic timer");
        Assert.Equal(20, count);
    }

    [Fact]
    public async Task UseFromAnotherThread_IsRefused_NamingTheOwningCpu()
    {
        await using var runtime = Start();
        var timer = new CpuTimer(runtime[1], static _ => { });
        var e = Assert.Throws<InvalidOperationException>(() => timer.Start(TimeSpan.FromSeconds(1)));
        Assert.Contains("CPU 1", e.Message);
        Assert.Contains("not a CPU", e.Message);
        e = await Assert.ThrowsAsync<InvalidOperationException>(() => runtime[0].InvokeAsync(() => timer.Stop()).AsTask());
        Assert.Contains("CPU 1", e.Message);
        Assert.Contains("CPU 0", e.Message);
        Assert.Throws<InvalidOperationException>(() => timer.Dispose());
        Assert.Throws<InvalidOperationException>(() => timer.Reset());
    }

    [Fact]
    public async Task ThrowingCallback_IsReported_AndOtherTimersStillFire()
    {
        await using var runtime = Start();
        var errors = new List<Exception>();
        runtime.UnhandledException += (_, e) => { lock (errors) errors.Add(e.Exception); };
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var bad = new CpuTimer(runtime[1], static _ => throw new InvalidTimeZoneException("boom"));
        var good = new CpuTimer(runtime[1], static s => ((TaskCompletionSource)s!).SetResult(), done);
        await runtime[1].InvokeAsync(() =>
        {
            bad.Start(TimeSpan.Zero);
            good.Start(TimeSpan.Zero);
        }).AsTask().WithHangDetector();
        await done.Task.WithHangDetector();
        lock (errors) Assert.Contains(errors, e => e is InvalidTimeZoneException);
    }

    [Fact]
    public async Task DisposingTheRuntime_WithArmedTimers_Completes_AndTheyNeverFire()
    {
        var runtime = Start();
        int fired = 0;
        var timer = new CpuTimer(runtime[1], _ => Interlocked.Increment(ref fired));
        await runtime[1].InvokeAsync(() => timer.Start(TimeSpan.FromHours(1))).AsTask().WithHangDetector();
        await runtime.DisposeAsync().AsTask().WithHangDetector();
        Assert.Equal(0, Volatile.Read(ref fired));
        timer.Dispose(); // from outside, once the runtime stopped: allowed
        Assert.Equal(0, runtime[1].ArmedTimers);
    }

    /// <summary>A CPU held by cpusync runs no soft interrupts, so no callout; it fires once the hold ends.</summary>
    [Fact]
    public async Task DueTimer_OnAHeldCpu_FiresAfterTheHold()
    {
        await using var runtime = Start();
        int fired = 0;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var timer = new CpuTimer(runtime[1], _ =>
        {
            Interlocked.Increment(ref fired);
            done.SetResult();
        });
        using (runtime.Interlock(CpuMask.Of(1)))
        {
            // Arm from an IPI (IPIs still run on a held CPU), then let it come due while the CPU is held.
            runtime[1].Send(static (t, _) => ((CpuTimer)t!).Start(TimeSpan.FromMilliseconds(1)), timer);
            runtime.Synchronize();
            Thread.Sleep(20); // a stretch past the due time, not a synchronization
            Assert.Equal(0, Volatile.Read(ref fired));
        }
        await done.Task.WithHangDetector();
        Assert.Equal(1, Volatile.Read(ref fired));
    }

    [Fact]
    public async Task ReArming_AllocatesNothing()
    {
        await using var runtime = Start();
        var timer = new CpuTimer(runtime[0], static _ => { });
        long allocated = await runtime[0].InvokeAsync(() =>
        {
            for (int i = 0; i < 10_000; i++) timer.Start(TimeSpan.FromMilliseconds(i % 5000)); // warm up: the wheel, JIT tiers
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 100_000; i++)
            {
                timer.Start(TimeSpan.FromMilliseconds(i % 5000)); // levels 0 to 2
                if ((i & 7) == 0) timer.Stop();
                if ((i & 15) == 1) timer.Reset();
            }
            timer.Stop();
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }).AsTask().WithHangDetector();
        Assert.Equal(0, allocated);
    }

    [Fact]
    public async Task Firing_AllocatesNothing()
    {
        await using var runtime = Start();
        var state = new FireState();
        state.Timer = new CpuTimer(runtime[1], static s =>
        {
            var f = (FireState)s!;
            f.Count++;
            if (f.Count == 200) f.Before = GC.GetAllocatedBytesForCurrentThread();
            if (f.Count == 2200)
            {
                f.After = GC.GetAllocatedBytesForCurrentThread();
                f.Done.SetResult();
                return;
            }
            f.Timer!.Start(TimeSpan.Zero); // due at once: fires at the next softclock
        }, state);
        await runtime[1].InvokeAsync(() => state.Timer.Start(TimeSpan.Zero)).AsTask().WithHangDetector();
        await Progress.Await(state.Done.Task, () => Volatile.Read(ref state.Count), what: "2200 firings");
        Assert.Equal(0, state.After - state.Before);
    }

    private sealed class FireState
    {
        public CpuTimer? Timer;
        public int Count;
        public long Before, After;
        public readonly TaskCompletionSource Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
