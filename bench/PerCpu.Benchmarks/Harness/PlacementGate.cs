using System.Diagnostics;

namespace PerCpu.Benchmarks.Harness;

/// <summary>
/// Keeps only runs taken while the vCPUs sat where they sat at the start. Reference = median of ~15 probes at start;
/// a run counts when the probes just before and just after it are both within 30% of the reference. Before a run
/// the gate re-probes for up to 2 s until the placement is back (at most 60 s of such waiting per suite run).
/// </summary>
public sealed class PlacementGate
{
    public const double Tolerance = 0.30;
    private const double MaxWaitPerRunSeconds = 2.0;
    private const double MaxWaitTotalSeconds = 60.0;

    private readonly IPlacementProbe _probe;

    /// <summary>Probes report this (or more) when not one round trip completed within their time cap.</summary>
    public const double NoReading = 1e11;

    private PlacementGate(IPlacementProbe probe, IReadOnlyList<double> referenceProbes)
    {
        _probe = probe;
        ReferenceProbes = referenceProbes;
        // Probes that got no round trip done say nothing about placement: the reference is the median of the others.
        var readings = referenceProbes.Where(p => p < NoReading).ToList();
        ReferenceNs = Stats.Median(readings.Count > 0 ? readings : referenceProbes);
    }

    public string ProbeDescription => _probe.Description;

    /// <summary>Median of the start probes (ns per line round trip).</summary>
    public double ReferenceNs { get; }

    public IReadOnlyList<double> ReferenceProbes { get; }

    /// <summary>Seconds spent waiting for the placement to come back, over the whole suite run.</summary>
    public double WaitedSeconds { get; private set; }

    public static PlacementGate Start(IPlacementProbe probe, int probes, int intervalMs) =>
        new(probe, probe.Measure(probes, intervalMs));

    public bool Near(double probeNs) =>
        probeNs > ReferenceNs * (1 - Tolerance) && probeNs < ReferenceNs * (1 + Tolerance);

    public double Probe() => _probe.Measure(1, 0)[0];

    /// <summary>Probes until the placement is near the reference or the wait budget is spent; returns the last probe.</summary>
    public double WaitForPlacement()
    {
        long t0 = Stopwatch.GetTimestamp();
        double p = Probe();
        while (!Near(p))
        {
            double waited = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            if (waited >= MaxWaitPerRunSeconds || WaitedSeconds + waited >= MaxWaitTotalSeconds) break;
            Thread.Sleep(20);
            p = Probe();
        }
        WaitedSeconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
        return p;
    }
}
