using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Report;

public enum Verdict
{
    Pass,
    Miss,

    /// <summary>A figure it needs is missing, failed, or was measured while the placement was off.</summary>
    NotJudged,
}

/// <summary>One criterion for one row: the ratio or figure it needs, what it got, the verdict.</summary>
/// <remarks><see cref="Threshold"/> is the factor or limit as stated; <see cref="Line"/> is the same threshold in the
/// row's own unit (factor × the reference's value), where the chart draws it; null when it has no place on the axis.</remarks>
public sealed record TargetResult(string RowKey, string Criterion, Verdict Verdict, double? Actual, double? Threshold, string Detail, double? Line = null);

/// <summary>
/// The performance targets, each stated against another row of the same run (never against a stored
/// number): ratios are this row's value / the reference row's value, in the row's unit. A verdict needs both rows
/// measured with the placement settled.
/// </summary>
public static class Targets
{
    private delegate TargetResult Check(SuiteReport report);

    private static readonly (string Row, Check Check)[] s_criteria =
    [
        ("percpu.send", r => AtLeast(r, "percpu.send", "c.batched", 0.5, "≥ 0.5× C batched ring")),
        ("percpu.send", r => AtLeast(r, "percpu.send", "c.ring", 1.2, "≥ 1.2× C per-message ring")),
        ("percpu.send", r => AtLeastBestPeer(r, "percpu.send", 2.0, "≥ 2× best .NET peer")),
        ("percpu.send", r => ZeroBytes(r, "percpu.send", "0 B/msg")),
        ("percpu.pingpong.poll", r => AtMost(r, "percpu.pingpong.poll", "c.pingpong", 1.1, "≤ 1.1× C ring ping-pong")),
        ("percpu.pingpong.idle", r => AtMost(r, "percpu.pingpong.idle", "c.pingpong", 1.5, "≤ 1.5× C ring ping-pong")),
        ("percpu.parked", r => AtMost(r, "percpu.parked", "c.futex", 1.1, "≤ 1.1× C futex ping-pong")),
        // The peer crosses to a dedicated thread and back, as InvokeAsync does (net.tp.tcs, for information only, never crosses).
        ("percpu.invoke", r => AtMost(r, "percpu.invoke", "net.thread.channel", 0.5, "≤ 0.5× dedicated thread + Channel + IValueTaskSource")),
        ("percpu.invoke", r => ZeroBytes(r, "percpu.invoke", "0 B/call")),
        ("percpu.idle", r => Below(r, "percpu.idle", 1.0, "< 1% of one core")),
        ("percpu.softint.schedule", r => AtMostNanoseconds(r, "percpu.softint.schedule", 50, "≤ 50 ns per Schedule + dispatch")),
        // "ScheduleOn ≤ 1.2× Send": a ScheduleOn round trip against a Send round trip with the same default options.
        ("percpu.softint.pingpong", r => AtMost(r, "percpu.softint.pingpong", "percpu.pingpong.idle", 1.2, "≤ 1.2× Send ping-pong (idle)")),
    ];

    /// <summary>Bytes per operation below which a row counts as allocation-free (a run's one-off setup, spread thin).</summary>
    public const double ZeroBytesTolerance = 0.01;

    public static IReadOnlyList<TargetResult> Evaluate(SuiteReport report)
    {
        var results = new List<TargetResult>();
        foreach (var (row, check) in s_criteria)
            if (report.Results.Any(r => r.Row.Key == row)) results.Add(check(report));
        return results;
    }

    public static bool HasTarget(string rowKey) => s_criteria.Any(c => c.Row == rowKey);

    private static TargetResult AtLeast(SuiteReport r, string key, string refKey, double factor, string text) =>
        Ratio(r, key, refKey, r.Find(refKey), factor, text, higherIsBetter: true);

    private static TargetResult AtMost(SuiteReport r, string key, string refKey, double factor, string text) =>
        Ratio(r, key, refKey, r.Find(refKey), factor, text, higherIsBetter: false);

    private static TargetResult AtLeastBestPeer(SuiteReport r, string key, double factor, string text)
    {
        RowResult? peer = r.BestPeer(RowKind.Throughput);
        return Ratio(r, key, peer?.Row.Key ?? "best peer", peer, factor, text, higherIsBetter: true);
    }

    private static TargetResult Ratio(SuiteReport r, string key, string refKey, RowResult? reference, double factor, string text, bool higherIsBetter)
    {
        RowResult? row = r.Find(key);
        if (row is null) return new(key, text, Verdict.NotJudged, null, factor, "row failed");
        if (reference is null) return new(key, text, Verdict.NotJudged, null, factor, $"{refKey} not measured");
        double ratio = row.Value / reference.Value;
        double line = factor * reference.Value;
        string detail = $"{ratio:0.00}× {reference.Row.Key}";
        if (row.PlacementOff || reference.PlacementOff) return new(key, text, Verdict.NotJudged, ratio, factor, detail + " (placement off)", line);
        bool pass = higherIsBetter ? ratio >= factor : ratio <= factor;
        return new(key, text, pass ? Verdict.Pass : Verdict.Miss, ratio, factor, detail, line);
    }

    private static TargetResult ZeroBytes(SuiteReport r, string key, string text)
    {
        RowResult? row = r.Find(key);
        if (row is null) return new(key, text, Verdict.NotJudged, null, 0, "row failed");
        bool pass = row.BytesPerOp < ZeroBytesTolerance;
        return new(key, text, pass ? Verdict.Pass : Verdict.Miss, row.BytesPerOp, 0, $"{row.BytesPerOp:0.###} B/op");
    }

    private static TargetResult Below(SuiteReport r, string key, double limit, string text)
    {
        RowResult? row = r.Find(key);
        if (row is null) return new(key, text, Verdict.NotJudged, null, limit, "row failed");
        return new(key, text, row.Value < limit ? Verdict.Pass : Verdict.Miss, row.Value, limit, $"{row.Value:0.00}%", limit);
    }

    /// <summary>
    /// An absolute limit on the time per operation: a throughput row's ops/s become ns per op (1e9 / value), a round
    /// trip row's value is already ns. The chart's tick is the limit in the row's unit (20 M/s for 50 ns per op). Like a
    /// ratio, it is not judged while the placement is off.
    /// </summary>
    private static TargetResult AtMostNanoseconds(SuiteReport r, string key, double limitNs, string text)
    {
        RowResult? row = r.Find(key);
        if (row is null) return new(key, text, Verdict.NotJudged, null, limitNs, "row failed");
        (double ns, double? line) = row.Row.Kind switch
        {
            RowKind.Throughput => (1e9 / row.Value, 1e9 / limitNs),
            RowKind.RoundTrip => (row.Value, limitNs),
            _ => (double.NaN, (double?)null),   // a wrong criterion must not cost the run its report: said in the detail
        };
        if (line is null) return new(key, text, Verdict.NotJudged, null, limitNs, $"{key} is a {row.Row.Kind} row, not a time or throughput");
        if (!(row.Value > 0) || !double.IsFinite(ns)) return new(key, text, Verdict.NotJudged, null, limitNs, $"no usable value ({row.Value})", line);
        string detail = $"{ns:0.0} ns/op";
        if (row.PlacementOff) return new(key, text, Verdict.NotJudged, ns, limitNs, detail + " (placement off)", line);
        return new(key, text, ns <= limitNs ? Verdict.Pass : Verdict.Miss, ns, limitNs, detail, line);
    }

    /// <summary>Summary for the table's target column: "pass", "miss 1/4", "n/a", or "" when the row has no target.</summary>
    public static string Summarize(IReadOnlyList<TargetResult> all, string rowKey, bool quick)
    {
        int total = 0, miss = 0, notJudged = 0;
        foreach (TargetResult t in all)
        {
            if (t.RowKey != rowKey) continue;
            total++;
            if (t.Verdict == Verdict.Miss) miss++;
            if (t.Verdict == Verdict.NotJudged) notJudged++;
        }
        if (total == 0) return "";
        string s = miss > 0 ? $"miss {miss}/{total}" : notJudged > 0 ? "n/a" : "pass";
        return quick ? $"({s})" : s;   // quick mode: tiny counts, the verdict means nothing
    }
}
