using System.Runtime.CompilerServices;

namespace PerCpu.Tests.Core;

/// <summary>
/// InvokeAsync and the waits from a thread that is not a CPU, against a full inbox: they return pending tasks instead
/// of blocking, honour their tokens, and lose or duplicate nothing. Every scenario holds the target CPU inside a
/// function (<see cref="TestUtil.Block"/>) and fills its inbox, so the inbox is full whatever the timing.
/// </summary>
public sealed class InvokeBackpressureTests
{
    private static readonly Action<object?, long> s_nothing = static (_, _) => { };

    /// <summary>Blocks <paramref name="cpu"/> and fills its inbox; returns how many fillers were accepted.</summary>
    private static int BlockAndFill(Cpu cpu, ManualResetEventSlim gate)
    {
        TestUtil.Block(cpu, gate);
        int filled = 0;
        while (cpu.TrySend(s_nothing)) filled++;
        return filled;
    }

    [Fact]
    public async Task FullInbox_ReturnsPending_CancelledCallNeverRuns_OtherRunsOnceAfterRelease()
    {
        await using var runtime = TestUtil.Start(2, o => o.InboxCapacity = 16);
        using var gate = new ManualResetEventSlim();
        Assert.Equal(16, BlockAndFill(runtime[1], gate));
        int cancelledRuns = 0, keptRuns = 0;
        using var cts = new CancellationTokenSource();
        // If InvokeAsync blocked while the inbox is full, this would never return (the CPU is held until the gate opens).
        (ValueTask<int> cancelled, ValueTask<int> kept) = await Task.Run(() =>
            (runtime[1].InvokeAsync(() => Interlocked.Increment(ref cancelledRuns), cts.Token),
             runtime[1].InvokeAsync(() => Interlocked.Increment(ref keptRuns)))).WithHangDetector();
        Assert.False(cancelled.IsCompleted);
        Assert.False(kept.IsCompleted);

        cts.Cancel();
        // The cancellation completes while the CPU is still held: the call was never accepted.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.AsTask().WithHangDetector());
        Assert.False(kept.IsCompleted);

        gate.Set();
        Assert.Equal(1, await kept.AsTask().WithHangDetector());
        await runtime[1].InvokeAsync(static () => { }).AsTask().WithHangDetector(); // after everything queued before it
        Assert.Equal(0, Volatile.Read(ref cancelledRuns));
        Assert.Equal(1, Volatile.Read(ref keptRuns));
    }

    [Fact]
    public async Task WaitingCalls_AreAcceptedInTheOrderTheyCame()
    {
        await using var runtime = TestUtil.Start(2, o => o.InboxCapacity = 16);
        using var gate = new ManualResetEventSlim();
        BlockAndFill(runtime[1], gate);
        var order = new List<int>(); // touched only on CPU 1
        var calls = new List<Task>();
        for (int i = 0; i < 40; i++) // more than an inbox's worth: the pump must go round several times
            calls.Add(runtime[1].InvokeAsync(static (s) => s.Order.Add(s.I), (Order: order, I: i)).AsTask());
        Assert.All(calls, c => Assert.False(c.IsCompleted));
        gate.Set();
        await Task.WhenAll(calls).WithHangDetector();
        Assert.Equal(Enumerable.Range(0, 40), await runtime[1].InvokeAsync(() => order.ToArray()).AsTask().WithHangDetector());
        Assert.True(runtime.GetStatistics().FifoFull >= 40);
    }

    [Fact]
    public async Task Dispose_WaitsForAWaitingCall_WhichRunsExactlyOnce()
    {
        var runtime = TestUtil.Start(2, o => o.InboxCapacity = 16);
        using var gate = new ManualResetEventSlim();
        BlockAndFill(runtime[1], gate);
        int runs = 0;
        ValueTask<int> waiting = runtime[1].InvokeAsync(() => Interlocked.Increment(ref runs));
        Task disposal = runtime.DisposeAsync().AsTask();
        // Disposal begins on the thread pool: once it has, new calls are refused while the waiting one is still held.
        Assert.True(SpinWait.SpinUntil(() => runtime.IsDisposed, TestUtil.Hang), "disposal never began");
        Assert.False(waiting.IsCompleted);
        Assert.Throws<ObjectDisposedException>(() => runtime[1].InvokeAsync(static () => 0));
        gate.Set();
        await disposal.WithHangDetector();
        Assert.Equal(1, await waiting.AsTask().WithHangDetector());
        Assert.Equal(1, runs);
    }

    [Fact]
    public async Task WaitForAsync_FromOutside_IsPendingUntilTheMessageRan_AndCanBeCancelled()
    {
        await using var runtime = TestUtil.Start(2);
        using var gate = new ManualResetEventSlim();
        TestUtil.Block(runtime[1], gate);
        var ran = new StrongBox<bool>();
        long seq = runtime[1].Send(static (o, _) => ((StrongBox<bool>)o!).Value = true, ran);
        ValueTask wait = runtime[1].WaitForAsync(seq);
        using var cts = new CancellationTokenSource();
        ValueTask cancelled = runtime[1].WaitForAsync(seq, cts.Token);
        Assert.False(wait.IsCompleted);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.AsTask().WithHangDetector());
        Assert.False(ran.Value);
        gate.Set();
        await wait.AsTask().WithHangDetector();
        Assert.True(ran.Value);
        Assert.True(runtime[1].WaitForAsync(seq).IsCompletedSuccessfully); // already run: completes at once
        Assert.Throws<ArgumentOutOfRangeException>(() => runtime[1].WaitForAsync(seq + 1000));
    }

    [Fact]
    public async Task WaitForAsync_OnACpu_WaitsLikeWaitFor()
    {
        await using var runtime = TestUtil.Start(2);
        bool done = await runtime[0].InvokeAsync(static async () =>
        {
            var flag = new StrongBox<bool>();
            Cpu target = Cpu.Current!.Runtime[1];
            long seq = target.Send(static (o, _) => ((StrongBox<bool>)o!).Value = true, flag);
            await target.WaitForAsync(seq);
            return flag.Value;
        }).AsTask().WithHangDetector();
        Assert.True(done);
    }

    [Fact]
    public async Task SynchronizeAsync_FromOutside_CompletesOnceEveryCpuRanWhatItHad()
    {
        await using var runtime = TestUtil.Start(2);
        using var gate = new ManualResetEventSlim();
        TestUtil.Block(runtime[1], gate);
        var ran = new int[2];
        runtime[0].Send(static (o, _) => Interlocked.Increment(ref ((int[])o!)[0]), ran);
        runtime[1].Send(static (o, _) => Interlocked.Increment(ref ((int[])o!)[1]), ran);
        ValueTask sync = runtime.SynchronizeAsync();
        Assert.False(sync.IsCompleted);
        using (var cts = new CancellationTokenSource())
        {
            ValueTask cancelled = runtime.SynchronizeAsync(cts.Token);
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.AsTask().WithHangDetector());
        }
        gate.Set();
        await sync.AsTask().WithHangDetector();
        Assert.Equal(new[] { 1, 1 }, ran);
    }
}
