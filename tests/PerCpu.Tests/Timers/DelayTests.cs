using System.Diagnostics;

namespace PerCpu.Tests.Timers;

/// <summary>Cpu.Delay: completes on its CPU, never early, cancellable from any thread, pooled (0 B awaited on the CPU).</summary>
[Collection("Stress")]
public sealed class DelayTests
{
    private static CpuRuntime Start(int cpus = 2) => TestUtil.Start(cpus, TestUtil.Quiet);

    [Fact]
    public async Task Delay_NeverCompletesEarly_AndResumesOnItsCpu()
    {
        await using var runtime = Start();
        (TimeSpan elapsed, Cpu? resumedOn) = await runtime[1].InvokeAsync(async () =>
        {
            long start = Stopwatch.GetTimestamp(); // before arming
            await Cpu.Current!.Delay(TimeSpan.FromMilliseconds(25));
            return (Stopwatch.GetElapsedTime(start), Cpu.Current);
        }).AsTask().WithHangDetector();
        Assert.Same(runtime[1], resumedOn);
        Assert.True(elapsed >= TimeSpan.FromMilliseconds(25), $"{elapsed.TotalMilliseconds} ms");
    }

    [Fact]
    public async Task ManyDelays_InALoop_NeverEarly()
    {
        await using var runtime = Start();
        TimeSpan shortest = await runtime[0].InvokeAsync(async () =>
        {
            TimeSpan min = TimeSpan.MaxValue;
            for (int i = 0; i < 50; i++)
            {
                TimeSpan d = TimeSpan.FromMicroseconds(100 * (i % 23));
                long start = Stopwatch.GetTimestamp();
                await Cpu.Current!.Delay(d);
                TimeSpan slack = Stopwatch.GetElapsedTime(start) - d;
                if (slack < min) min = slack;
                Assert.Same(runtime[0], Cpu.Current);
            }
            return min;
        }).AsTask().WithHangDetector();
        Assert.True(shortest >= TimeSpan.Zero, $"a delay completed {(-shortest).TotalMicroseconds} µs early");
    }

    [Fact]
    public async Task Delay_CancelledFromAnotherThread_CompletesCancelledOnItsCpu()
    {
        await using var runtime = Start();
        using var cts = new CancellationTokenSource();
        var armed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<(bool Cancelled, Cpu? On)> waiter = runtime[1].InvokeAsync<(bool, Cpu?)>(async () =>
        {
            ValueTask delay = Cpu.Current!.Delay(TimeSpan.FromHours(1), cts.Token);
            armed.SetResult();
            try
            {
                await delay;
                return (false, Cpu.Current);
            }
            catch (OperationCanceledException e) when (e.CancellationToken == cts.Token)
            {
                return (true, Cpu.Current);
            }
        }).AsTask();
        await armed.Task.WithHangDetector();
        cts.Cancel(); // this test's thread: not a CPU
        (bool cancelled, Cpu? on) = await waiter.WithHangDetector();
        Assert.True(cancelled);
        Assert.Same(runtime[1], on);
        Assert.Equal(0, await runtime[1].InvokeAsync(() => runtime[1].ArmedTimers));
    }

    [Fact]
    public async Task Delay_CancelledFromAnotherCpu_AndAlreadyCancelled()
    {
        await using var runtime = Start();
        using var cts = new CancellationTokenSource();
        Task<bool> waiter = runtime[1].InvokeAsync(async () =>
        {
            try
            {
                await Cpu.Current!.Delay(Timeout.InfiniteTimeSpan, cts.Token);
                return false;
            }
            catch (OperationCanceledException)
            {
                return true;
            }
        }).AsTask();
        await Progress.Until(() => runtime[1].ArmedTimersRacy > 0 || waiter.IsCompleted, () => 0, "the delay to be armed");
        await runtime[0].InvokeAsync(() => cts.Cancel()).AsTask().WithHangDetector();
        Assert.True(await waiter.WithHangDetector());
        bool immediate = await runtime[1].InvokeAsync(() => Cpu.Current!.Delay(TimeSpan.FromHours(1), cts.Token).IsCanceled);
        Assert.True(immediate);
    }

    [Fact]
    public async Task Delay_FromAnotherThread_IsRefused_NamingTheCpu()
    {
        await using var runtime = Start();
        var e = Assert.Throws<InvalidOperationException>(() => runtime[1].Delay(TimeSpan.FromMilliseconds(1)));
        Assert.Contains("CPU 1", e.Message);
        e = await Assert.ThrowsAsync<InvalidOperationException>(() => runtime[0].InvokeAsync(() => runtime[1].Delay(TimeSpan.FromMilliseconds(1))).AsTask());
        Assert.Contains("CPU 1", e.Message);
        Assert.Contains("CPU 0", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => runtime[1].Delay(TimeSpan.FromMilliseconds(-2)));
    }

    [Fact]
    public async Task Delay_AwaitedOnItsCpu_AllocatesNothing()
    {
        await using var runtime = Start();
        long allocated = await runtime[1].InvokeAsync(async () =>
        {
            Cpu cpu = Cpu.Current!;
            for (int i = 0; i < 200; i++) await cpu.Delay(TimeSpan.FromTicks(1)); // warm up: the pool, the wheel, JIT
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 5_000; i++) await cpu.Delay(TimeSpan.FromTicks(1 + (i % 3) * 5000)); // 100 ns to 1 ms
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }).AsTask().WithHangDetector();
        Assert.Equal(0, allocated);
    }

    [Fact]
    public async Task DisposingTheRuntime_WithAPendingDelay_Completes_AndTheDelayFailsWithObjectDisposed()
    {
        var runtime = Start();
        var observed = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        // A posted task is not work the runtime waits for: its delay does not keep the runtime alive.
        runtime[1].Post(async () =>
        {
            try
            {
                await Cpu.Current!.Delay(TimeSpan.FromHours(1));
                observed.SetResult(null);
            }
            catch (Exception e)
            {
                observed.SetResult(e);
            }
        });
        await Progress.Until(() => runtime[1].ArmedTimersRacy > 0, () => 0, "the delay to be armed");
        await runtime.DisposeAsync().AsTask().WithHangDetector();
        Assert.IsType<ObjectDisposedException>(await observed.Task.WithHangDetector());
    }

    [Fact]
    public async Task AnInvokeAsyncAwaitingADelay_KeepsTheRuntimeUntilTheDelayCompletes()
    {
        var runtime = Start();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<Cpu?> call = runtime[1].InvokeAsync<Cpu?>(async () =>
        {
            started.SetResult();
            await Cpu.Current!.Delay(TimeSpan.FromMilliseconds(50));
            return Cpu.Current;
        }).AsTask();
        await started.Task.WithHangDetector();
        await runtime.DisposeAsync().AsTask().WithHangDetector();
        Assert.Same(runtime[1], await call.WithHangDetector());
    }
}
