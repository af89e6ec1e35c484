namespace PerCpu.Tests.Core;

[Collection("Stress")]
public sealed class AllocationTests
{
    private sealed class Counter
    {
        public long Value;
    }

    private static readonly Action<object?, long> s_increment = static (o, _) => ((Counter)o!).Value++;

    [Fact]
    public async Task SteadyStateSend_FromCpu_AllocatesNothing()
    {
        await using var runtime = TestUtil.Start(2, TestUtil.Quiet);
        var counter = new Counter();
        long allocated = await Progress.Await(runtime[0].InvokeAsync(() =>
        {
            Cpu target = runtime[1];
            long seq = 0;
            for (int i = 0; i < 100_000; i++) seq = target.Send(s_increment, counter); // warm up: rings, JIT tiers
            target.WaitFor(seq);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 1_000_000; i++) seq = target.Send(s_increment, counter);
            target.WaitFor(seq);
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }).AsTask(), Progress.Of(runtime));
        Assert.Equal(0, allocated);
        Assert.Equal(1_100_000, counter.Value);
    }

    [Fact]
    public async Task SteadyStateSend_FromOutsideThread_AllocatesNothing()
    {
        await using var runtime = TestUtil.Start(2, TestUtil.Quiet);
        var counter = new Counter();
        long allocated = await Progress.Await(Task.Factory.StartNew(() =>
        {
            long seq = 0;
            for (int i = 0; i < 50_000; i++) seq = runtime[1].Send(s_increment, counter);
            runtime[1].WaitFor(seq);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 200_000; i++) seq = runtime[1].Send(s_increment, counter);
            runtime[1].WaitFor(seq);
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }, TaskCreationOptions.LongRunning), Progress.Of(runtime));
        Assert.Equal(0, allocated);
    }

    /// <summary>
    /// A CPU awaits calls on another CPU in a loop; both CPU threads are measured (the caller's continuation and the
    /// operation pool run on CPU 0, the function and the reply on CPU 1).
    /// </summary>
    [Fact]
    public async Task SteadyStateInvokeAsync_CpuToCpu_AllocatesNothing()
    {
        await using var runtime = TestUtil.Start(2, TestUtil.Quiet);
        var counter = new Counter();
        Func<long> bump = () => ++counter.Value;
        Func<long> threadBytes = static () => GC.GetAllocatedBytesForCurrentThread();
        (long caller, long target) = await Progress.Await(runtime[0].InvokeAsync(async () =>
        {
            Cpu other = runtime[1];
            for (int i = 0; i < 20_000; i++) await other.InvokeAsync(bump);
            long targetBefore = await other.InvokeAsync(threadBytes);
            long callerBefore = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 100_000; i++) await other.InvokeAsync(bump);
            long callerAfter = GC.GetAllocatedBytesForCurrentThread();
            long targetAfter = await other.InvokeAsync(threadBytes);
            return (callerAfter - callerBefore, targetAfter - targetBefore);
        }).AsTask(), Progress.Of(runtime));
        Assert.Equal(0, caller);
        Assert.Equal(0, target);
        Assert.Equal(120_000, counter.Value);
    }

    /// <summary>
    /// A thread that is not a CPU calls InvokeAsync in a loop and reads each result once it is complete (no
    /// continuation: the completion travels through the thread pool as the pooled operation itself).
    /// </summary>
    [Fact]
    public async Task SteadyStateInvokeAsync_FromOutsideThread_AllocatesNothing()
    {
        await using var runtime = TestUtil.Start(2, TestUtil.Quiet);
        var counter = new Counter();
        Func<long> bump = () => ++counter.Value;
        long allocated = await Progress.Await(Task.Factory.StartNew(() =>
        {
            static long Call(Cpu cpu, Func<long> f)
            {
                ValueTask<long> call = cpu.InvokeAsync(f);
                var spinner = new SpinWait();
                while (!call.IsCompleted) spinner.SpinOnce(sleep1Threshold: -1);
                return call.GetAwaiter().GetResult();
            }
            // Sized for a loaded machine, where each call waits for a thread-pool thread (a few ms): any allocation
            // per call would still show as thousands of bytes.
            for (int i = 0; i < 2_000; i++) Call(runtime[1], bump);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 5_000; i++) Call(runtime[1], bump);
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }, TaskCreationOptions.LongRunning), Progress.Of(runtime));
        Assert.Equal(0, allocated);
        Assert.Equal(7_000, counter.Value);
    }

    private readonly record struct Bump(Counter Counter, long Delta);

    /// <summary>One delegate for warm-up and measurement: each static lambda in the source is its own delegate, created (64 B) at its first use.</summary>
    private static readonly Func<Bump, long> s_bump = static b => b.Counter.Value += b.Delta;

    /// <summary>
    /// The state-passing form with a value-type state and a static lambda: nothing is boxed and no closure is made, on
    /// either CPU (the state travels in the pooled operation).
    /// </summary>
    [Fact]
    public async Task SteadyStateInvokeAsync_WithValueTypeState_CpuToCpu_AllocatesNothing()
    {
        await using var runtime = TestUtil.Start(2, TestUtil.Quiet);
        var counter = new Counter();
        Func<long> threadBytes = static () => GC.GetAllocatedBytesForCurrentThread();
        (long caller, long target) = await Progress.Await(runtime[0].InvokeAsync(static async s =>
        {
            (Counter c, Func<long> bytes, CpuRuntime rt) = s;
            Cpu other = rt[1];
            var bump = new Bump(c, 1);
            for (int i = 0; i < 20_000; i++) await other.InvokeAsync(s_bump, bump);
            long targetBefore = await other.InvokeAsync(bytes);
            long callerBefore = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 100_000; i++) await other.InvokeAsync(s_bump, bump);
            long callerAfter = GC.GetAllocatedBytesForCurrentThread();
            long targetAfter = await other.InvokeAsync(bytes);
            return (callerAfter - callerBefore, targetAfter - targetBefore);
        }, (counter, threadBytes, runtime)).AsTask(), Progress.Of(runtime));
        Assert.Equal(0, caller);
        Assert.Equal(0, target);
        Assert.Equal(120_000, counter.Value);
    }

    /// <summary>As the outside-thread test above, with the state-passing form and a value-type state.</summary>
    [Fact]
    public async Task SteadyStateInvokeAsync_WithValueTypeState_FromOutsideThread_AllocatesNothing()
    {
        await using var runtime = TestUtil.Start(2, TestUtil.Quiet);
        var counter = new Counter();
        long allocated = await Progress.Await(Task.Factory.StartNew(() =>
        {
            static long Call(Cpu cpu, Bump bump)
            {
                ValueTask<long> call = cpu.InvokeAsync(s_bump, bump);
                var spinner = new SpinWait();
                while (!call.IsCompleted) spinner.SpinOnce(sleep1Threshold: -1);
                return call.GetAwaiter().GetResult();
            }
            var bump = new Bump(counter, 1);
            for (int i = 0; i < 2_000; i++) Call(runtime[1], bump);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 5_000; i++) Call(runtime[1], bump);
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }, TaskCreationOptions.LongRunning), Progress.Of(runtime));
        Assert.Equal(0, allocated);
        Assert.Equal(7_000, counter.Value);
    }

    /// <summary>
    /// An outside caller that passes a cancellable token: a call that finds room is pooled like any other (only a call
    /// that has to wait for room with such a token is not), so the steady state still allocates nothing.
    /// </summary>
    [Fact]
    public async Task SteadyStateInvokeAsync_WithCancellableToken_FromOutsideThread_AllocatesNothing()
    {
        await using var runtime = TestUtil.Start(2, TestUtil.Quiet);
        var counter = new Counter();
        Func<long> bump = () => ++counter.Value;
        using var cts = new CancellationTokenSource();
        long allocated = await Progress.Await(Task.Factory.StartNew(() =>
        {
            static long Call(Cpu cpu, Func<long> f, CancellationToken token)
            {
                ValueTask<long> call = cpu.InvokeAsync(f, token);
                var spinner = new SpinWait();
                while (!call.IsCompleted) spinner.SpinOnce(sleep1Threshold: -1);
                return call.GetAwaiter().GetResult();
            }
            for (int i = 0; i < 2_000; i++) Call(runtime[1], bump, cts.Token);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 5_000; i++) Call(runtime[1], bump, cts.Token);
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }, TaskCreationOptions.LongRunning), Progress.Of(runtime));
        Assert.Equal(0, allocated);
        Assert.Equal(7_000, counter.Value);
    }
}
