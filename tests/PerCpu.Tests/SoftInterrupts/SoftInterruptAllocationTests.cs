namespace PerCpu.Tests.SoftInterrupts;

/// <summary>Steady-state Schedule and ScheduleOn allocate nothing, on every thread involved (the dispatch included).</summary>
[Collection("Stress")]
public sealed class SoftInterruptAllocationTests
{
    private const int Warmup = 50_000, Measured = 200_000;

    /// <summary>Bytes allocated by a CPU thread between two runs of a handler there; written by that thread only.</summary>
    private sealed class Probe
    {
        public long Runs;
        public long Before, After;
        public readonly TaskCompletionSource Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public SoftInterrupt? Self;
        public SoftInterrupt? Target;
        public Cpu? TargetCpu;
        public volatile bool Stop;

        /// <summary>Records the thread's allocation at the first and last measured run; true once it is done.</summary>
        public bool Measure()
        {
            long run = ++Runs;
            if (run == Warmup) Before = GC.GetAllocatedBytesForCurrentThread();
            if (run == Warmup + Measured)
            {
                After = GC.GetAllocatedBytesForCurrentThread();
                return true;
            }
            return false;
        }
    }

    /// <summary>A handler that schedules itself again: each round is one local Schedule plus one dispatch of it.</summary>
    private static readonly Action<object?> s_selfScheduling = static p =>
    {
        var probe = (Probe)p!;
        if (probe.Measure()) probe.Done.TrySetResult();
        else probe.Self!.Schedule();
    };

    [Fact]
    public async Task LocalScheduleAndDispatch_AllocateNothing()
    {
        await using var runtime = TestUtil.Start(2, TestUtil.Quiet);
        var probe = new Probe();
        using SoftInterrupt si = runtime.Establish(SoftLevel.Net, s_selfScheduling, probe);
        probe.Self = si;
        si.ScheduleOn(runtime[1]);
        await Progress.Await(probe.Done.Task, Progress.Of(runtime));
        Assert.Equal(0, probe.After - probe.Before);
    }

    /// <summary>The source side: a CPU whose self-scheduling handler calls ScheduleOn to the other CPU each round.</summary>
    private static readonly Action<object?> s_remoteSource = static p =>
    {
        var probe = (Probe)p!;
        if (probe.Stop) return;
        probe.Target!.ScheduleOn(probe.TargetCpu!);
        if (probe.Measure()) probe.Done.TrySetResult();
        probe.Self!.Schedule();
    };

    /// <summary>The target side: counts its runs and measures its own thread.</summary>
    private static readonly Action<object?> s_remoteTarget = static p =>
    {
        var probe = (Probe)p!;
        if (probe.Measure()) probe.Done.TrySetResult();
    };

    [Fact]
    public async Task ScheduleOn_CpuToCpu_AllocatesNothing_OnEitherCpu()
    {
        await using var runtime = TestUtil.Start(2, TestUtil.Quiet);
        var target = new Probe();
        var source = new Probe { TargetCpu = runtime[1] };
        using SoftInterrupt targetSi = runtime.Establish(SoftLevel.Serial, s_remoteTarget, target);
        using SoftInterrupt sourceSi = runtime.Establish(SoftLevel.Clock, s_remoteSource, source);
        source.Self = sourceSi;
        source.Target = targetSi;
        sourceSi.ScheduleOn(runtime[0]);
        try
        {
            await Progress.Await(target.Done.Task, Progress.Of(runtime)); // the target ran Warmup + Measured times: the source ran at least as often
            await Progress.Await(source.Done.Task, Progress.Of(runtime));
        }
        finally
        {
            source.Stop = true; // lets the runtime quiesce even after a failure
        }
        Assert.Equal(0, source.After - source.Before);
        Assert.Equal(0, target.After - target.Before);
    }

    [Fact]
    public async Task ScheduleOn_FromAThreadThatIsNotACpu_AllocatesNothing()
    {
        await using var runtime = TestUtil.Start(2, TestUtil.Quiet);
        var target = new Probe();
        using SoftInterrupt si = runtime.Establish(SoftLevel.Bio, s_remoteTarget, target);
        long allocated = await Progress.Await(Task.Factory.StartNew(() =>
        {
            for (int i = 0; i < Warmup; i++) si.ScheduleOn(runtime[1]);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < Measured; i++) si.ScheduleOn(runtime[1]);
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }, TaskCreationOptions.LongRunning), Progress.Of(runtime));
        Assert.Equal(0, allocated);
    }
}
