namespace PerCpu.Tests.Core;

public sealed class InvokeAsyncTests
{
    [Fact]
    public async Task FromOutside_ReturnsResultComputedOnTarget()
    {
        await using var runtime = TestUtil.Start(2);
        await Task.Run(async () =>
        {
            for (int i = 0; i < 100; i++)
            {
                int id = await runtime[1].InvokeAsync(static () => Cpu.Current!.Id);
                Assert.Equal(1, id);
                // An outside caller resumes on the thread pool, never on the CPU.
                Assert.Null(Cpu.Current);
                Assert.True(Thread.CurrentThread.IsThreadPoolThread);
            }
        }).WithHangDetector();
    }

    [Fact]
    public async Task FromCpu_ResumesOnTheCallingCpu()
    {
        await using var runtime = TestUtil.Start(3);
        var trail = await runtime[0].InvokeAsync(async () =>
        {
            var seen = new List<int> { Cpu.Current!.Id };
            for (int i = 0; i < 100; i++)
            {
                int where = await runtime[1 + (i & 1)].InvokeAsync(static () => Cpu.Current!.Id);
                seen.Add(where);
                seen.Add(Cpu.Current!.Id); // resumed here
            }
            await Task.Yield();
            seen.Add(Cpu.Current!.Id);
            await Task.Delay(1);
            seen.Add(Cpu.Current!.Id);
            return seen;
        }).AsTask().WithHangDetector();
        Assert.Equal(0, trail[0]);
        for (int i = 0; i < 100; i++)
        {
            Assert.Equal(1 + (i & 1), trail[1 + 2 * i]);
            Assert.Equal(0, trail[2 + 2 * i]);
        }
        Assert.Equal(0, trail[^2]);
        Assert.Equal(0, trail[^1]);
    }

    [Fact]
    public async Task AsyncFunction_RunsItsAwaitsOnTarget()
    {
        await using var runtime = TestUtil.Start(2);
        int[] ids = await runtime[1].InvokeAsync(async () =>
        {
            int a = Cpu.Current!.Id;
            await Task.Delay(1);
            int b = Cpu.Current!.Id;
            await Task.Yield();
            return new[] { a, b, Cpu.Current!.Id };
        }).AsTask().WithHangDetector();
        Assert.Equal(new[] { 1, 1, 1 }, ids);
    }

    [Fact]
    public async Task Exception_IsRethrownToAwaiter_AndCpuGoesOn()
    {
        await using var runtime = TestUtil.Start(2);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => runtime[1].InvokeAsync((Func<int>)(static () => throw new InvalidOperationException("boom"))).AsTask());
        Assert.Equal("boom", e.Message);
        var e2 = await Assert.ThrowsAsync<FormatException>(() => runtime[1].InvokeAsync(static async () => { await Task.Yield(); throw new FormatException("async boom"); }).AsTask());
        Assert.Equal("async boom", e2.Message);
        Assert.Equal(5, await runtime[1].InvokeAsync(static () => 5).AsTask().WithHangDetector());
    }

    [Fact]
    public async Task CancellationBeforeStart_CancelsAndTheFunctionNeverRuns()
    {
        await using var runtime = TestUtil.Start(2);
        using var gate = new ManualResetEventSlim();
        using var cts = new CancellationTokenSource();
        // CPU 1 is stuck in a function until the test lets it go: what follows queues behind it, whatever the timing.
        TestUtil.Block(runtime[1], gate);
        int ran = 0;
        ValueTask<int> call = runtime[1].InvokeAsync(() => ++ran, cts.Token);
        cts.Cancel();
        gate.Set();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call.AsTask().WithHangDetector());
        await runtime[1].InvokeAsync(static () => { }).AsTask().WithHangDetector();
        Assert.Equal(0, ran);
    }

    [Fact]
    public async Task AlreadyCancelledToken_CompletesCanceledAtOnce()
    {
        await using var runtime = TestUtil.Start(2);
        ValueTask<int> call = runtime[1].InvokeAsync(static () => 1, new CancellationToken(true));
        Assert.True(call.IsCanceled);
        await Task.CompletedTask;
    }

    [Fact]
    public async Task Awaiting_InvokeAsync_Twice_IsRejected()
    {
        await using var runtime = TestUtil.Start(2);
        ValueTask<int> call = runtime[1].InvokeAsync(static () => 1);
        Assert.Equal(1, await call);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await call);
    }

    [Fact]
    public async Task TaskSchedulerAndSynchronizationContext_RunOnTheCpu()
    {
        await using var runtime = TestUtil.Start(2);
        int id = await Task.Factory.StartNew(static () => Cpu.Current!.Id, CancellationToken.None, TaskCreationOptions.None, runtime[1].TaskScheduler).WithHangDetector();
        Assert.Equal(1, id);
        var tcs = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        runtime[0].SynchronizationContext.Post(_ => tcs.SetResult(Cpu.Current!.Id), null);
        Assert.Equal(0, await tcs.Task.WithHangDetector());
    }
}
