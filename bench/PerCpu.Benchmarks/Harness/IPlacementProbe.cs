namespace PerCpu.Benchmarks.Harness;

/// <summary>
/// Measures where the two vCPUs sit right now: ns per round trip of one cache line bounced between threads pinned to
/// CPU 0 and CPU 1 (20k round trips). The host moves this guest's vCPUs, and every cross-CPU figure moves with them.
/// </summary>
public interface IPlacementProbe
{
    /// <summary>For the report: which probe this is.</summary>
    string Description { get; }

    /// <summary><paramref name="count"/> probes, <paramref name="intervalMs"/> ms apart.</summary>
    IReadOnlyList<double> Measure(int count, int intervalMs);
}
