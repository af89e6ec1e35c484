using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Report;

/// <summary>Everything one suite run produced, and the comparisons the table, JSON and chart share.</summary>
public sealed class SuiteReport
{
    private readonly Dictionary<string, RowResult> _byKey;

    public SuiteReport(IReadOnlyList<RowResult> results)
    {
        Results = results;
        _byKey = results.ToDictionary(r => r.Row.Key, StringComparer.Ordinal);
    }

    public required DateTimeOffset Started { get; init; }

    public required bool Quick { get; init; }

    public required double ElapsedSeconds { get; init; }

    /// <summary>CPU model, CPU count, OS.</summary>
    public required string Machine { get; init; }

    /// <summary>.NET version, GC mode.</summary>
    public required string Runtime { get; init; }

    /// <summary>Compiler and flags of the native reference, or why it is unavailable.</summary>
    public required string Native { get; init; }

    public required string ProbeDescription { get; init; }

    /// <summary>Reference probe (ns), 0 when no probe could run.</summary>
    public required double ReferenceProbeNs { get; init; }

    public required IReadOnlyList<double> ReferenceProbes { get; init; }

    /// <summary>Probes taken after the last row: did the placement drift during the suite?</summary>
    public required IReadOnlyList<double> EndProbes { get; init; }

    public required double PlacementWaitSeconds { get; init; }

    public required IReadOnlyList<string> Filters { get; init; }

    /// <summary>Share of the machine other processes used while the rows ran (all rows together).</summary>
    public required double OthersPercent { get; init; }

    public required double StealPercent { get; init; }

    public IReadOnlyList<RowResult> Results { get; }

    public RowResult? Find(string key) => _byKey.TryGetValue(key, out RowResult? r) && r.Ok ? r : null;

    /// <summary>The best stock .NET peer of a kind (highest throughput, shortest round trip), among the rows that ran.</summary>
    public RowResult? BestPeer(RowKind kind)
    {
        RowResult? best = null;
        foreach (RowResult r in Results)
        {
            if (!r.Ok || r.Row.Group != RowGroup.Peer || r.Row.Kind != kind) continue;
            if (best is null || IsBetter(kind, r.Value, best.Value)) best = r;
        }
        return best;
    }

    public static bool IsBetter(RowKind kind, double a, double b) => kind == RowKind.Throughput ? a > b : a < b;

    /// <summary>This row's value / its C reference's value, in the row's own unit; null when either is missing.</summary>
    public double? RatioToC(RowResult r) =>
        r.Ok && r.Row.CompareWith is { } key && Find(key) is { } c && c.Value > 0 ? r.Value / c.Value : null;

    /// <summary>This row's value / the best .NET peer's value of the same kind.</summary>
    public double? RatioToBestPeer(RowResult r) =>
        r.Ok && r.Row.Kind != RowKind.Percent && BestPeer(r.Row.Kind) is { } p && p.Value > 0 ? r.Value / p.Value : null;

    public int Failures => Results.Count(r => !r.Ok);
}
