using System.Diagnostics;
using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.PerCpuRows;

/// <summary>
/// What an idle runtime costs: process CPU time (all threads, getrusage) while a default two-CPU runtime has
/// nothing to do, over 5 s, as % of one core. The figure includes the whole process (the harness's sleeping main
/// thread, runtime housekeeping), so it is an upper bound; the note gives the same process without a runtime.
/// </summary>
internal static class IdleRow
{
    public static IEnumerable<BenchRow> Rows()
    {
        yield return new BenchRow
        {
            Key = "percpu.idle", Name = "PerCpu idle runtime (2 CPUs, defaults)", Kind = RowKind.Percent, Group = RowGroup.PerCpu,
            QuickCount = 300, FixedCount = 5_000, Runs = 3, Gated = false,
            What = "process CPU time while a default 2-CPU runtime idles (ticks every 10 ms, parked otherwise), % of one core; count = ms",
            Run = Idle,
        };
    }

    private static RunSample Idle(long milliseconds)
    {
        // The same process without a runtime, briefly, so the note can show what the runtime adds.
        int baselineMs = (int)Math.Min(1000, milliseconds / 5);
        double baseline = CpuPercent(baselineMs);

        using CpuRuntime runtime = Runtimes.Start();
        // Let both CPUs finish starting and park, and the JIT finish tiering up what earlier rows made hot.
        Thread.Sleep((int)Math.Min(1000, milliseconds / 5));
        CpuStatistics before = runtime.GetStatistics();
        long bytes0 = GC.GetTotalAllocatedBytes(precise: true);
        ProcessUsage.Reading u0 = ProcessUsage.Self();
        long t0 = Stopwatch.GetTimestamp();
        Thread.Sleep((int)milliseconds);
        ProcessUsage.Reading used = ProcessUsage.Self() - u0;
        double wall = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        long bytes = GC.GetTotalAllocatedBytes(precise: true) - bytes0;
        CpuStatistics s = runtime.GetStatistics() - before;
        double percent = used.CpuSeconds / wall * 100;
        return new RunSample(wall, 1, bytes, percent,
            $"same process without a runtime: {baseline:0.00}%; wakes received {s.WakesReceived}; {used.Sleeps} sleeps and {bytes} B allocated per run");
    }

    /// <summary>Process CPU time over a sleep of <paramref name="ms"/>, as % of one core (the idle rows' measure).</summary>
    internal static double CpuPercent(int ms)
    {
        ProcessUsage.Reading u0 = ProcessUsage.Self();
        long t0 = Stopwatch.GetTimestamp();
        Thread.Sleep(ms);
        return (ProcessUsage.Self() - u0).CpuSeconds / Stopwatch.GetElapsedTime(t0).TotalSeconds * 100;
    }
}
