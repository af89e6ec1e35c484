using System.Globalization;
using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Report;

/// <summary>
/// The printed table: one line per row, grouped by kind, then the targets with their ratios, then one note per
/// row (what it does, its count, sleeps, others' CPU use). Written to the console and to results/*.txt.
/// </summary>
public static class TableReport
{
    public static void Write(SuiteReport report, IReadOnlyList<TargetResult> targets, TextWriter w)
    {
        var inv = CultureInfo.InvariantCulture;
        w.WriteLine();
        w.WriteLine($"PerCpu benchmark suite, {(report.Quick ? "QUICK mode (tiny counts, one run, no gating: checks that rows run; figures mean nothing)" : "full mode")}");
        w.WriteLine($"  started {report.Started:yyyy-MM-dd HH:mm:ss zzz}, took {report.ElapsedSeconds:0} s; filters: {(report.Filters.Count == 0 ? "none" : string.Join(", ", report.Filters))}");
        w.WriteLine($"  machine: {report.Machine}");
        w.WriteLine($"  runtime: {report.Runtime}");
        w.WriteLine($"  native:  {report.Native}");
        w.WriteLine($"  others:  other processes used {report.OthersPercent:0}% of the machine while the rows ran (steal {report.StealPercent:0}%)" +
                    (report.OthersPercent > 5 ? ": pinned figures are NOT trustworthy; run again on a quiet machine" : ""));
        if (report.ReferenceProbeNs > 0)
        {
            double lo = report.ReferenceProbeNs * (1 - PlacementGate.Tolerance), hi = report.ReferenceProbeNs * (1 + PlacementGate.Tolerance);
            w.WriteLine($"  placement: {report.ProbeDescription}");
            w.WriteLine($"    reference {report.ReferenceProbeNs:0} ns = median of {report.ReferenceProbes.Count} probes [{string.Join(' ', report.ReferenceProbes.Select(Probe))}]" +
                        (report.Quick ? "" : $"; a run is kept when the probes before and after it are within {lo:0}..{hi:0} ns"));
            if (report.EndProbes.Count > 0)
                w.WriteLine($"    probes after the last row: [{string.Join(' ', report.EndProbes.Select(Probe))}]" +
                            (report.PlacementWaitSeconds >= 0.05 ? $"; waited {report.PlacementWaitSeconds:0.0} s in all for the placement to come back" : ""));
        }
        else
        {
            w.WriteLine("  placement: no probe could run: runs are not gated");
        }

        foreach (RowKind kind in new[] { RowKind.Throughput, RowKind.RoundTrip, RowKind.Percent })
        {
            var rows = report.Results.Where(r => r.Row.Kind == kind).ToList();
            if (rows.Count == 0) continue;
            w.WriteLine();
            w.WriteLine(kind switch
            {
                RowKind.Throughput => "Throughput, one sender -> one receiver (M msg/s; higher is better; ratios = this / reference, >1 is faster)",
                RowKind.RoundTrip => "Round trips, one request there and one reply back (ns; lower is better; ratios = this / reference, <1 is faster)",
                _ => "Idle cost (process CPU time while the runtime idles, % of one core; lower is better)",
            });
            w.WriteLine($"{"#",-3} {"row",-46} {"value",12} {"min..max",17} {"B/op",6} {"xC",6} {"vs",-5} {"xPeer",6} {"target",-9} {"probe",6} {"runs",-10} {"others",6}");
            foreach (RowResult r in rows)
            {
                int index = IndexOf(report, r);
                if (!r.Ok)
                {
                    w.WriteLine($"{index,-3} {Clip(r.Row.Name, 46),-46} FAILED: {r.Error}");
                    continue;
                }
                string runs = report.Quick ? "1 quick" : r.PlacementOff ? $"{r.RunsKept}/{r.RunsTried} OFF!" : $"{r.RunsKept}/{r.RunsTried}{(r.Row.Gated ? "" : " ungtd")}";
                string others = $"{r.OthersPercent:0}%{(r.OthersPercent > 5 ? "!" : "")}";
                w.WriteLine($"{index,-3} {Clip(r.Row.Name, 46),-46} {Format.Value(kind, r.Value),12} {Format.Spread(kind, r.Min, r.Max),17} " +
                            $"{Format.Bytes(r.BytesPerOp),6} {Format.Ratio(report.RatioToC(r)),6} {Format.Short(r.Row.CompareWith),-5} " +
                            $"{Format.Ratio(report.RatioToBestPeer(r)),6} {Targets.Summarize(targets, r.Row.Key, report.Quick),-9} " +
                            $"{(r.ProbeNs > 0 ? r.ProbeNs.ToString("0", inv) : "-"),6} {runs,-10} {others,6}");
            }
        }
        WriteLegend(report, w);
        WriteTargets(report, targets, w);
        WriteNotes(report, w);
    }

    private static void WriteLegend(SuiteReport report, TextWriter w)
    {
        w.WriteLine();
        w.WriteLine("xC = value / the C row named in 'vs' (ring = C per-message ring, pp = C ring ping-pong, futex = C futex ping-pong);");
        RowResult? bt = report.BestPeer(RowKind.Throughput), br = report.BestPeer(RowKind.RoundTrip);
        w.WriteLine($"xPeer = value / the best stock .NET peer of that kind ({bt?.Row.Key ?? "none"}; {br?.Row.Key ?? "none"}); the C# rings are the in-language limit, not peers;");
        w.WriteLine("B/op = bytes allocated per message or round trip, all threads, timed sections only; probe = median line round trip (ns) around the kept runs;");
        w.WriteLine("runs = kept/tried (OFF! = fewer than 3 runs met the placement gate: median of all runs, not judged); others = machine CPU used by other processes (! above 5%).");
    }

    private static void WriteTargets(SuiteReport report, IReadOnlyList<TargetResult> targets, TextWriter w)
    {
        if (targets.Count == 0) return;
        w.WriteLine();
        w.WriteLine(report.Quick ? "Targets (quick mode: verdicts shown only to exercise the code; they mean nothing)" : "Targets");
        foreach (TargetResult t in targets)
        {
            string verdict = t.Verdict switch { Verdict.Pass => "pass", Verdict.Miss => "MISS", _ => "n/a" };
            w.WriteLine($"  {verdict,-5} {t.RowKey,-22} {t.Criterion,-34} got {t.Detail}");
        }
    }

    private static void WriteNotes(SuiteReport report, TextWriter w)
    {
        w.WriteLine();
        w.WriteLine("Notes");
        foreach (RowResult r in report.Results)
        {
            int index = IndexOf(report, r);
            w.WriteLine($"{index,3}. {r.Row.Key}: {r.Row.What}");
            if (!r.Ok) continue;
            string count = r.Row.Kind == RowKind.Percent ? $"{r.Count} ms per run" : $"n = {r.Count:N0}/run";
            string all = r.RunsTried > 1 ? $"; all runs: {string.Join(' ', r.AllRuns.Select(v => Format.Number(r.Row.Kind, v)))}" : "";
            string early = r.StoppedEarly is null ? "" : "; " + r.StoppedEarly;
            w.WriteLine($"     {count}; {r.SleepsPerOp:0.00} sleeps/op; others {r.OthersPercent:0.0}% steal {r.StealPercent:0.0}%{early}{all}{(string.IsNullOrEmpty(r.Note) ? "" : "; " + r.Note)}");
        }
    }

    /// <summary>A probe reading in ns, or "none" when the probe completed no round trip (overloaded machine).</summary>
    private static string Probe(double ns) => ns >= PlacementGate.NoReading ? "none" : ns.ToString("0", CultureInfo.InvariantCulture);

    private static int IndexOf(SuiteReport report, RowResult r)
    {
        for (int i = 0; i < report.Results.Count; i++)
            if (ReferenceEquals(report.Results[i], r)) return i + 1;
        return 0;
    }

    private static string Clip(string s, int width) => s.Length <= width ? s : s[..(width - 1)] + "…";
}
