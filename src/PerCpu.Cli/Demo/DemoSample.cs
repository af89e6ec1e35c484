using System.Diagnostics;

namespace PerCpu.Cli.Demo;

/// <summary>The runtime's counters at one instant: per CPU, for outside threads, and soft interrupts per CPU and level.</summary>
internal sealed class DemoSample
{
    /// <summary>The soft interrupt levels, highest priority first (the order a CPU runs them and the table shows them).</summary>
    public static readonly SoftLevel[] Levels = [SoftLevel.Serial, SoftLevel.Net, SoftLevel.Bio, SoftLevel.Clock];

    private DemoSample(long timestamp, CpuStatistics[] cpus, CpuStatistics external, SoftInterruptStatistics[,] soft)
    {
        GcCollections = [GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)];
        GcPause = GC.GetTotalPauseDuration();
        Timestamp = timestamp;
        Cpus = cpus;
        External = external;
        Soft = soft;
    }

    /// <summary>Garbage collections of generations 0, 1 and 2 so far (process-wide).</summary>
    public int[] GcCollections { get; }

    /// <summary>Total time the process was paused for garbage collection so far.</summary>
    public TimeSpan GcPause { get; }

    /// <summary><see cref="Stopwatch"/> timestamp of the sample.</summary>
    public long Timestamp { get; }

    /// <summary>Per-CPU IPI statistics, by CPU id.</summary>
    public CpuStatistics[] Cpus { get; }

    /// <summary>Counters of calls from threads that are not CPUs.</summary>
    public CpuStatistics External { get; }

    /// <summary>Soft interrupt statistics by [CPU id, index in <see cref="Levels"/>].</summary>
    public SoftInterruptStatistics[,] Soft { get; }

    /// <summary>Every CPU and the outside threads, summed.</summary>
    public CpuStatistics Total
    {
        get
        {
            CpuStatistics sum = External;
            foreach (CpuStatistics s in Cpus) sum += s;
            return sum;
        }
    }

    public static DemoSample Take(CpuRuntime runtime)
    {
        var cpus = new CpuStatistics[runtime.CpuCount];
        var soft = new SoftInterruptStatistics[runtime.CpuCount, Levels.Length];
        for (int i = 0; i < cpus.Length; i++)
        {
            cpus[i] = runtime[i].GetStatistics();
            for (int l = 0; l < Levels.Length; l++) soft[i, l] = runtime[i].GetSoftInterruptStatistics(Levels[l]);
        }
        return new DemoSample(Stopwatch.GetTimestamp(), cpus, runtime.GetExternalStatistics(), soft);
    }

    /// <summary>Soft interrupt runs of one level, summed over the CPUs.</summary>
    public long SoftCount(int level)
    {
        long n = 0;
        for (int i = 0; i < Cpus.Length; i++) n += Soft[i, level].Count;
        return n;
    }

    /// <summary>Soft interrupt blocks (an asynchronous handler held its level) of one CPU, all levels.</summary>
    public long SoftBlocks(int cpu)
    {
        long n = 0;
        for (int l = 0; l < Levels.Length; l++) n += Soft[cpu, l].Blocks;
        return n;
    }
}
