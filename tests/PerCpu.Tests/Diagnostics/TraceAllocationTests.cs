namespace PerCpu.Tests.Diagnostics;

/// <summary>Tracing off costs a branch and tracing on costs a few stores: neither allocates in steady state.</summary>
[Collection("Stress")]
public sealed class TraceAllocationTests
{
    private sealed class Counter
    {
        public long Value;
    }

    private static readonly Action<object?, long> s_increment = static (o, _) => ((Counter)o!).Value++;
    private static readonly Func<long> s_threadBytes = static () => GC.GetAllocatedBytesForCurrentThread();

    /// <summary>CPU 0 sends 200,000 messages to CPU 1; returns the bytes allocated on CPU 0 (sender) and CPU 1 (receiver).</summary>
    private static async Task<(long Sender, long Receiver)> MeasureSendsAsync(CpuRuntime runtime, Counter counter)
    {
        Cpu target = runtime[1];
        long receiverBefore = await target.InvokeAsync(s_threadBytes);
        long sender = await runtime[0].InvokeAsync(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            long seq = 0;
            for (int i = 0; i < 200_000; i++) seq = target.Send(s_increment, counter, i);
            target.WaitFor(seq);
            return GC.GetAllocatedBytesForCurrentThread() - before;
        });
        long receiverAfter = await target.InvokeAsync(s_threadBytes);
        return (sender, receiverAfter - receiverBefore);
    }

    [Fact]
    public async Task SteadyStateSend_WithTracingOffAndOn_AllocatesNothing()
    {
        await using var runtime = TestUtil.Start(2, o =>
        {
            o.FifoCapacity = 4096;
            TestUtil.Quiet(o);
        });
        var counter = new Counter();
        await Progress.Await(MeasureSendsAsync(runtime, counter), Progress.Of(runtime)); // warm up: rings, JIT tiers, pools

        (long sender, long receiver) = await Progress.Await(MeasureSendsAsync(runtime, counter), Progress.Of(runtime));
        Assert.Equal((0L, 0L), (sender, receiver));

        runtime.StartTrace(4096); // wraps many times over: recording must not allocate either
        await Progress.Await(MeasureSendsAsync(runtime, counter), Progress.Of(runtime));
        (sender, receiver) = await Progress.Await(MeasureSendsAsync(runtime, counter), Progress.Of(runtime));
        var trace = runtime.StopTrace();
        Assert.Equal((0L, 0L), (sender, receiver));
        Assert.Contains(trace.Events, e => e.Name == "send_norm" && e.Cpu == 0);
        Assert.Contains(trace.Events, e => e.Name == "receive" && e.Cpu == 1);
        Assert.Equal(800_000, counter.Value);
    }
}
