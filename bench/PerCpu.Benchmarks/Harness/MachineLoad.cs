using System.Diagnostics;

namespace PerCpu.Benchmarks.Harness;

/// <summary>
/// How much of the machine other processes used while a row ran: busy time from /proc/stat minus this process's own
/// CPU time (children included), over wall time x CPUs; and the share the hypervisor stole. A pinned figure taken
/// while others used more than a few percent is not to be trusted, so every row prints it.
/// </summary>
internal readonly record struct MachineLoad(long Timestamp, double BusySeconds, double StealSeconds, double SelfSeconds)
{
    /// <summary>USER_HZ: the unit of /proc/stat on every Linux architecture the runtime supports.</summary>
    private const double TicksPerSecond = 100;

    public static MachineLoad Snapshot()
    {
        double busy = 0, steal = 0;
        try
        {
            using var reader = new StreamReader("/proc/stat");
            string? line = reader.ReadLine();   // "cpu  user nice system idle iowait irq softirq steal ..."
            if (line is not null && line.StartsWith("cpu ", StringComparison.Ordinal))
            {
                string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                busy = (long.Parse(f[1]) + long.Parse(f[2]) + long.Parse(f[3]) + long.Parse(f[6]) + long.Parse(f[7])) / TicksPerSecond;
                steal = f.Length > 8 ? long.Parse(f[8]) / TicksPerSecond : 0;
            }
        }
        catch (IOException) { /* not Linux: others/steal read 0 */ }
        catch (UnauthorizedAccessException) { }
        return new MachineLoad(Stopwatch.GetTimestamp(), busy, steal, ProcessUsage.SelfAndChildren().CpuSeconds);
    }

    /// <summary>Percent of the machine's capacity used by other processes, and stolen, between two snapshots.</summary>
    public static (double OthersPercent, double StealPercent) Between(MachineLoad a, MachineLoad b)
    {
        double capacity = Stopwatch.GetElapsedTime(a.Timestamp, b.Timestamp).TotalSeconds * Environment.ProcessorCount;
        if (capacity <= 0) return (0, 0);
        double others = (b.BusySeconds - a.BusySeconds) - (b.SelfSeconds - a.SelfSeconds);
        return (Math.Max(0, others) / capacity * 100, Math.Max(0, b.StealSeconds - a.StealSeconds) / capacity * 100);
    }
}
