using static PerCpu.Tests.SoftInterrupts.SoftTestUtil;

namespace PerCpu.Tests.SoftInterrupts;

/// <summary>Disestablishing: never runs again, waits for runs in progress anywhere, refuses to wait for itself.</summary>
public sealed class DisposeTests
{
    private sealed class Counter
    {
        public int Value;
    }

    private static readonly Action<object?> s_count = static c => Interlocked.Increment(ref ((Counter)c!).Value);

    /// <summary>Waits, off-CPU, until a condition another thread makes true holds (a hang detector, not a delay).</summary>
    private static void SpinUntil(Func<bool> condition, string what)
    {
        if (!SpinWait.SpinUntil(condition, TestUtil.Hang)) throw new Xunit.Sdk.XunitException($"Hang detector fired: {what}");
    }

    [Fact]
    public async Task ScheduleAfterDispose_ThrowsObjectDisposed()
    {
        await using var runtime = Manual();
        var counter = new Counter();
        SoftInterrupt si = runtime.Establish(SoftLevel.Net, s_count, counter);
        si.Dispose();
        Assert.Throws<ObjectDisposedException>(() => si.ScheduleOn(runtime[0]));
        Assert.Throws<ObjectDisposedException>(() => Run(runtime[0], si.Schedule));
        Assert.Throws<ObjectDisposedException>(() => Run(runtime[0], () => si.ScheduleOn(runtime[1])));
        si.Dispose(); // twice is fine
        await si.DisposeAsync();
        Drain(runtime);
        Assert.Equal(0, counter.Value);
    }

    [Fact]
    public async Task PendingButNotActive_ManualRuntime_NeverRuns()
    {
        await using var runtime = Manual();
        var counter = new Counter();
        var gate = new TaskCompletionSource();
        // An asynchronous handler holds the Net level on CPU 0, so the victim stays pending there.
        SoftInterrupt blocker = runtime.Establish(SoftLevel.Net, async _ => await gate.Task);
        SoftInterrupt victim = runtime.Establish(SoftLevel.Net, s_count, counter);
        Run(runtime[0], () =>
        {
            blocker.Schedule();
            victim.Schedule();
        });
        Assert.Equal(0, counter.Value);
        victim.Dispose();
        gate.SetResult();
        Drain(runtime);
        Assert.Equal(0, counter.Value);
        Assert.Equal(1, runtime[0].GetSoftInterruptStatistics(SoftLevel.Net).Count); // the blocker only
    }

    /// <summary>NetBSD's later fix: a handler pending (not active) on another CPU when Dispose begins must not run after it returns.</summary>
    [Fact]
    public async Task PendingButNotActiveOnAnotherCpu_NeverRunsAfterDisposeReturns()
    {
        await using var runtime = TestUtil.Start(2);
        var counter = new Counter();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var blocked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using SoftInterrupt blocker = runtime.Establish(SoftLevel.Bio, async _ =>
        {
            blocked.TrySetResult();
            await gate.Task;
        });
        SoftInterrupt victim = runtime.Establish(SoftLevel.Bio, s_count, counter);
        blocker.ScheduleOn(runtime[1]);
        await blocked.Task.WithHangDetector();
        victim.ScheduleOn(runtime[1]);
        // The inbox is FIFO for one sender: once this call has run, the victim is pending on CPU 1.
        await runtime[1].InvokeAsync(static () => { }).AsTask().WithHangDetector();
        Assert.Equal(0, counter.Value);
        victim.Dispose();
        gate.SetResult();
        await runtime[1].InvokeAsync(static () => { }).AsTask().WithHangDetector();
        await runtime[1].InvokeAsync(static () => { }).AsTask().WithHangDetector();
        Assert.Equal(0, counter.Value);
        Assert.Equal(1, runtime[1].GetSoftInterruptStatistics(SoftLevel.Bio).Count); // the blocker only
    }

    [Fact]
    public async Task DisposeFromInsideTheHandler_Throws_AndTheHandleStaysUsable()
    {
        await using var runtime = Manual();
        Exception? sync = null, async = null;
        int runs = 0;
        SoftInterrupt? si = null;
        si = runtime.Establish(SoftLevel.Net, _ =>
        {
            runs++;
            sync = Record(si!.Dispose);
            async = Record(() => si!.DisposeAsync());
        });
        Run(runtime[0], si.Schedule);
        Assert.IsType<InvalidOperationException>(sync);
        Assert.Contains("inside its own handler", sync!.Message);
        Assert.IsType<InvalidOperationException>(async);
        Run(runtime[0], si.Schedule); // not disposed
        Assert.Equal(2, runs);
        si.Dispose();
        Assert.Throws<ObjectDisposedException>(() => si.ScheduleOn(runtime[0]));
    }

    [Fact]
    public async Task SyncDisposeFromTheAsyncHandlerAfterItsAwait_Throws()
    {
        await using var runtime = Manual();
        Exception? error = null;
        bool done = false;
        SoftInterrupt? si = null;
        si = runtime.Establish(SoftLevel.Net, async _ =>
        {
            await Task.Yield(); // resumes as a task on this CPU, while the run is still active
            error = Record(si!.Dispose);
            done = true;
        });
        Run(runtime[0], si.Schedule);
        Drain(runtime);
        Assert.True(done);
        Assert.IsType<InvalidOperationException>(error);
        Assert.Contains("DisposeAsync", error!.Message);
        si.Dispose();
    }

    /// <summary>
    /// The handler on CPU 1 drains its IPIs while it runs (as WaitFor does), so the disposal barrier runs inside it;
    /// Dispose must still wait until the handler has returned.
    /// </summary>
    [Fact]
    public async Task Dispose_WaitsForARunningHandler_EvenWhenTheBarrierRanInsideIt()
    {
        await using var runtime = TestUtil.Start(2);
        var entered = new ManualResetEventSlim();
        bool go = false, exited = false;
        SoftInterrupt si = runtime.Establish(SoftLevel.Net, _ =>
        {
            entered.Set();
            Cpu self = Cpu.Current!;
            while (!Volatile.Read(ref go)) self.ProcessIpis();
            Volatile.Write(ref exited, true);
        });
        si.ScheduleOn(runtime[1]);
        entered.WaitOrFail("handler entered");
        Task<bool> disposer = Task.Factory.StartNew(() =>
        {
            si.Dispose();
            return Volatile.Read(ref exited);
        }, TaskCreationOptions.LongRunning);
        bool early;
        try
        {
            SpinUntil(() => si.BarrierPassed, "the disposer saw every CPU run the barrier (CPU 1 inside the handler)");
            early = disposer.IsCompleted; // the handler is still running: Dispose cannot have returned
        }
        finally
        {
            Volatile.Write(ref go, true); // released whatever happens, so that the runtime can shut down
        }
        Assert.False(early);
        Assert.True(await disposer.WithHangDetector());
    }

    [Fact]
    public async Task Dispose_WaitsForABlockedAsyncHandlerToComplete()
    {
        await using var runtime = TestUtil.Start(2);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new ManualResetEventSlim();
        bool exited = false;
        SoftInterrupt si = runtime.Establish(SoftLevel.Serial, async _ =>
        {
            started.Set();
            await gate.Task;
            Volatile.Write(ref exited, true);
        });
        si.ScheduleOn(runtime[0]);
        started.WaitOrFail("handler started");
        Task<bool> disposer = Task.Factory.StartNew(() =>
        {
            si.Dispose();
            return Volatile.Read(ref exited);
        }, TaskCreationOptions.LongRunning);
        Task<bool> asyncDisposer = Task.Run(async () =>
        {
            await si.DisposeAsync();
            return Volatile.Read(ref exited);
        });
        bool early;
        try
        {
            SpinUntil(() => si.BarrierPassed, "a disposer saw every CPU run the barrier");
            // The handler's run is blocked, not finished: neither disposer can have returned.
            early = disposer.IsCompleted || asyncDisposer.IsCompleted;
        }
        finally
        {
            gate.SetResult();
        }
        Assert.False(early);
        Assert.True(await disposer.WithHangDetector());
        Assert.True(await asyncDisposer.WithHangDetector());
    }

    [Fact]
    public async Task DisposeOnACpu_WhileTheHandlerWaitsForThatCpu_DoesNotDeadlock()
    {
        await using var runtime = TestUtil.Start(2);
        var entered = new ManualResetEventSlim();
        int ranOnCpu0 = 0;
        SoftInterrupt? si = null;
        si = runtime.Establish(SoftLevel.Net, _ =>
        {
            entered.Set();
            while (!si!.IsDying) Thread.SpinWait(10); // wait until CPU 0 is inside Dispose
            Cpu cpu0 = Cpu.Current!.Runtime[0];
            cpu0.WaitFor(cpu0.Send(static (c, _) => Interlocked.Increment(ref ((int[])c!)[0]), new[] { 0 }));
            Interlocked.Increment(ref ranOnCpu0);
        });
        si.ScheduleOn(runtime[1]);
        entered.WaitOrFail("handler entered");
        await runtime[0].InvokeAsync(() => si.Dispose()).AsTask().WithHangDetector();
        Assert.Equal(1, ranOnCpu0);
    }

    [Fact]
    public async Task DisposeAsyncOnTheCpuWhereTheHandlerIsBlocked_Completes_SyncDisposeThere_Throws()
    {
        await using var runtime = TestUtil.Start(2);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new ManualResetEventSlim();
        bool exited = false;
        SoftInterrupt si = runtime.Establish(SoftLevel.Clock, async _ =>
        {
            started.Set();
            await gate.Task;
            exited = true; // on CPU 0
        });
        si.ScheduleOn(runtime[0]);
        started.WaitOrFail("handler started");
        var syncError = await runtime[0].InvokeAsync(() => Record(si.Dispose)).AsTask().WithHangDetector();
        Assert.IsType<InvalidOperationException>(syncError);
        Task<bool> disposal = runtime[0].InvokeAsync(async () =>
        {
            await si.DisposeAsync();
            return exited;
        }).AsTask();
        bool early;
        try
        {
            SpinUntil(() => si.BarrierPassed, "the disposer saw every CPU run the barrier");
            early = disposal.IsCompleted;
        }
        finally
        {
            gate.SetResult();
        }
        Assert.False(early);
        Assert.True(await disposal.WithHangDetector());
        Assert.Throws<ObjectDisposedException>(() => si.ScheduleOn(runtime[1]));
    }

    [Fact]
    public async Task ConcurrentDisposers_AllReturnOnlyOnceDisposed()
    {
        await using var runtime = TestUtil.Start(2);
        var entered = new ManualResetEventSlim();
        bool go = false, exited = false;
        SoftInterrupt si = runtime.Establish(SoftLevel.Net, _ =>
        {
            entered.Set();
            Cpu self = Cpu.Current!;
            while (!Volatile.Read(ref go)) self.ProcessIpis(); // lets the barrier through while it runs
            Volatile.Write(ref exited, true);
        });
        si.ScheduleOn(runtime[1]);
        entered.WaitOrFail("handler entered");
        Task<bool>[] disposers =
        [
            Task.Factory.StartNew(() => { si.Dispose(); return Volatile.Read(ref exited); }, TaskCreationOptions.LongRunning),
            Task.Factory.StartNew(() => { si.Dispose(); return Volatile.Read(ref exited); }, TaskCreationOptions.LongRunning),
            runtime[0].InvokeAsync(() => { si.Dispose(); return Volatile.Read(ref exited); }).AsTask(),
            Task.Run(async () => { await si.DisposeAsync(); return Volatile.Read(ref exited); }),
        ];
        bool early;
        try
        {
            SpinUntil(() => si.BarrierPassed, "a disposal passed its barrier");
            early = disposers.Any(d => d.IsCompleted);
        }
        finally
        {
            Volatile.Write(ref go, true);
        }
        Assert.False(early);
        foreach (Task<bool> d in disposers) Assert.True(await d.WithHangDetector());
    }

    [Fact]
    public async Task DisposeDuringRuntimeDisposal_FromOutside_Completes()
    {
        var runtime = TestUtil.Start(2);
        var counter = new Counter();
        SoftInterrupt si = runtime.Establish(SoftLevel.Net, s_count, counter);
        si.ScheduleOn(runtime[0]);
        Task runtimeDisposal = runtime.DisposeAsync().AsTask();
        await si.DisposeAsync().AsTask().WithHangDetector();
        int afterDispose = Volatile.Read(ref counter.Value);
        await runtimeDisposal.WithHangDetector();
        Assert.Equal(afterDispose, counter.Value);
        Assert.Throws<ObjectDisposedException>(() => si.ScheduleOn(runtime[1]));
    }

    [Fact]
    public async Task DisposeAfterTheRuntimeStopped_Completes()
    {
        var runtime = TestUtil.Start(2);
        SoftInterrupt si = runtime.Establish(SoftLevel.Net, s_count, new Counter());
        await runtime.DisposeAsync();
        si.Dispose();
        Assert.Throws<ObjectDisposedException>(() => si.ScheduleOn(runtime[1]));
    }

    private static Exception? Record(Action action)
    {
        try
        {
            action();
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    private static Exception? Record(Func<ValueTask> action)
    {
        try
        {
            ValueTask task = action();
            return task.IsCompleted ? null : new Xunit.Sdk.XunitException("DisposeAsync from inside the handler did not fail at once");
        }
        catch (Exception e)
        {
            return e;
        }
    }
}
