using System.Text.Encodings.Web;
using System.Text.Json;

namespace PerCpu.Benchmarks.Report;

/// <summary>
/// The machine-readable result: run metadata, one object per row (value in its unit, spread, every run, ratios,
/// allocation, placement) and the target verdicts. Written by hand with Utf8JsonWriter so the schema is explicit.
/// </summary>
public static class JsonReport
{
    public const int SchemaVersion = 1;

    public static void Write(SuiteReport report, IReadOnlyList<TargetResult> targets, Stream stream)
    {
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        w.WriteStartObject();
        w.WriteNumber("schema", SchemaVersion);
        w.WriteString("mode", report.Quick ? "quick" : "full");
        w.WriteString("started", report.Started);
        w.WriteNumber("elapsedSeconds", Math.Round(report.ElapsedSeconds, 1));
        w.WriteString("machine", report.Machine);
        w.WriteString("runtime", report.Runtime);
        w.WriteString("native", report.Native);
        w.WriteNumber("othersPercent", Math.Round(report.OthersPercent, 2));
        w.WriteNumber("stealPercent", Math.Round(report.StealPercent, 2));
        w.WriteStartArray("filters");
        foreach (string f in report.Filters) w.WriteStringValue(f);
        w.WriteEndArray();

        w.WriteStartObject("placement");
        w.WriteString("probe", report.ProbeDescription);
        w.WriteNumber("referenceNs", Math.Round(report.ReferenceProbeNs, 1));
        w.WriteNumber("tolerance", Harness.PlacementGate.Tolerance);
        Numbers(w, "referenceProbesNs", report.ReferenceProbes);
        Numbers(w, "endProbesNs", report.EndProbes);
        w.WriteNumber("waitedSeconds", Math.Round(report.PlacementWaitSeconds, 2));
        w.WriteEndObject();

        w.WriteStartArray("rows");
        foreach (var r in report.Results)
        {
            w.WriteStartObject();
            w.WriteString("key", r.Row.Key);
            w.WriteString("name", r.Row.Name);
            w.WriteString("kind", r.Row.Kind.ToString());
            w.WriteString("group", r.Row.Group.ToString());
            w.WriteString("unit", r.Row.Kind switch { Harness.RowKind.Throughput => "msg/s", Harness.RowKind.RoundTrip => "ns", _ => "percent of one core" });
            w.WriteString("what", r.Row.What);
            w.WriteBoolean("ok", r.Ok);
            if (!r.Ok)
            {
                w.WriteString("error", r.Error);
                w.WriteEndObject();
                continue;
            }
            Optional(w, "value", r.Value);
            Optional(w, "min", r.Min);
            Optional(w, "max", r.Max);
            Numbers(w, "runs", r.AllRuns);
            w.WriteNumber("runsKept", r.RunsKept);
            w.WriteNumber("runsTried", r.RunsTried);
            w.WriteBoolean("gated", r.Row.Gated && !report.Quick);
            w.WriteBoolean("placementOff", r.PlacementOff);
            w.WriteNumber("probeNs", Math.Round(r.ProbeNs, 1));
            w.WriteNumber("countPerRun", r.Count);
            Optional(w, "bytesPerOp", r.BytesPerOp);
            Optional(w, "sleepsPerOp", r.SleepsPerOp);
            w.WriteNumber("othersPercent", Math.Round(r.OthersPercent, 2));
            w.WriteNumber("stealPercent", Math.Round(r.StealPercent, 2));
            if (r.Row.CompareWith is { } c) w.WriteString("comparedWith", c);
            Optional(w, "ratioToC", report.RatioToC(r));
            Optional(w, "ratioToBestPeer", report.RatioToBestPeer(r));
            if (r.Note is { Length: > 0 } note) w.WriteString("note", note);
            if (r.StoppedEarly is { } early) w.WriteString("stoppedEarly", early);
            w.WriteEndObject();
        }
        w.WriteEndArray();

        w.WriteStartArray("targets");
        foreach (TargetResult t in targets)
        {
            w.WriteStartObject();
            w.WriteString("row", t.RowKey);
            w.WriteString("criterion", t.Criterion);
            w.WriteString("verdict", t.Verdict switch { Verdict.Pass => "pass", Verdict.Miss => "miss", _ => "not judged" });
            Optional(w, "actual", t.Actual);
            Optional(w, "threshold", t.Threshold);
            Optional(w, "thresholdValue", t.Line);
            w.WriteString("detail", t.Detail);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void Numbers(Utf8JsonWriter w, string name, IReadOnlyList<double> values)
    {
        w.WriteStartArray(name);
        foreach (double v in values)
            if (double.IsFinite(v)) w.WriteNumberValue(v);
            else w.WriteNullValue();
        w.WriteEndArray();
    }

    /// <summary>JSON has no NaN or infinity: such a figure (or a missing one) is written as null.</summary>
    private static void Optional(Utf8JsonWriter w, string name, double? v)
    {
        if (v is { } x && double.IsFinite(x)) w.WriteNumber(name, x);
        else w.WriteNull(name);
    }
}
