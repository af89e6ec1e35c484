namespace PerCpu.Tests.Sync;

/// <summary>The README's promise for a held CPU: it runs IPIs only, no soft interrupts and no tasks, until released.</summary>
public sealed class HeldCpuTests
{
    /// <summary>
    /// A master that is not a CPU holds CPU 1. Then, through CPU 1's inbox (in order): a remote soft interrupt request
    /// (ScheduleOn), an IPI that schedules another soft interrupt locally, and a posted task. Twenty round trips to
    /// CPU 1 later (IPIs still run while held, and each came after those requests) all three are queued on CPU 1 and
    /// none has run. Once the scope closes, each runs exactly once.
    /// </summary>
    [Fact]
    public async Task HeldCpu_RunsNoSoftInterruptsAndNoTasks_UntilReleased_ThenRunsThem()
    {
        await using var runtime = TestUtil.Start(2);
        var runs = new long[3]; // [0] scheduled locally, [1] scheduled remotely, [2] the task
        using SoftInterrupt local = runtime.Establish(SoftLevel.Net, static o => Interlocked.Increment(ref ((long[])o!)[0]), runs);
        using SoftInterrupt remote = runtime.Establish(SoftLevel.Serial, static o => Interlocked.Increment(ref ((long[])o!)[1]), runs);
        CpuSyncScope scope = runtime.Interlock(CpuMask.Of(1));
        try
        {
            remote.ScheduleOn(runtime[1]);
            runtime[1].Send(static (o, _) => ((SoftInterrupt)o!).Schedule(), local);
            runtime[1].Post(() => Interlocked.Increment(ref runs[2]));
            for (int i = 0; i < 20; i++)
                Assert.Equal(1, await runtime[1].InvokeAsync(static () => Cpu.Current!.Id).AsTask().WithHangDetector());
            Assert.Equal(new long[] { 0, 0, 0 }, runs.Select(r => Interlocked.Read(ref r)).ToArray());
        }
        finally
        {
            scope.Dispose();
        }
        await Progress.WaitUntil(() => Interlocked.Read(ref runs[0]) + Interlocked.Read(ref runs[1]) + Interlocked.Read(ref runs[2]), 3);
        // A round trip through CPU 1's inbox: anything still queued there would have run by now.
        await runtime[1].InvokeAsync(static () => { }).AsTask().WithHangDetector();
        Assert.Equal(new long[] { 1, 1, 1 }, runs.Select(r => Interlocked.Read(ref r)).ToArray());
    }
}
