using System.Globalization;
using System.Security;
using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Report;

/// <summary>
/// A bar chart of the run, to look at instead of reading numbers: one panel per kind, one bar per row on a log
/// axis, the min..max spread as a whisker, each target drawn as a red tick at its threshold (the bar should reach
/// past it for throughput, stay short of it for times). Plain SVG, no script, opens in any browser.
/// </summary>
public static class SvgChart
{
    private const int AxisWidth = 540;
    private const double CharWidth = 6.8;   // average width of a 12 px sans-serif character, for layout only
    private const int RowHeight = 22;
    private const int BarHeight = 14;

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static string Color(RowGroup g) => g switch
    {
        RowGroup.Native => "#4d4d4d",
        RowGroup.CSharpRing => "#a0a0a0",
        RowGroup.Peer => "#6baed6",
        _ => "#e6550d",
    };

    /// <summary>Horizontal layout, sized to the longest row label: labels | axis | value and verdict.</summary>
    private readonly record struct Layout(int LabelRight, int AxisLeft, int AxisRight, int ValueLeft, int Width)
    {
        public static Layout For(SuiteReport report)
        {
            int longest = report.Results.Count == 0 ? 20 : report.Results.Max(r => r.Row.Name.Length + (r.PlacementOff ? 16 : 0));
            int labelRight = 12 + (int)(longest * CharWidth);
            int axisLeft = labelRight + 10, axisRight = axisLeft + AxisWidth;
            return new Layout(labelRight, axisLeft, axisRight, axisRight + 10, axisRight + 200);
        }
    }

    public static void Write(SuiteReport report, IReadOnlyList<TargetResult> targets, TextWriter w)
    {
        Layout layout = Layout.For(report);
        int width = layout.Width;

        var body = new StringWriter(Inv);
        int y = 86;
        foreach (RowKind kind in new[] { RowKind.Throughput, RowKind.RoundTrip, RowKind.Percent })
        {
            var rows = report.Results.Where(r => r.Row.Kind == kind).ToList();
            if (rows.Count > 0) y = Panel(body, layout, report, targets, kind, rows, y) + 24;
        }
        int height = y + 30;

        w.WriteLine($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\">");
        w.WriteLine($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>");
        string mode = report.Quick ? "QUICK mode: tiny counts, figures mean nothing" : "full mode";
        w.WriteLine($"<text x=\"12\" y=\"22\" font-size=\"16\" font-weight=\"bold\">PerCpu benchmark suite, {Esc(mode)}, {report.Started:yyyy-MM-dd HH:mm}</text>");
        string probe = report.ReferenceProbeNs > 0 ? $"reference probe {report.ReferenceProbeNs:0} ns (CPU0-CPU1 line round trip)" : "no placement probe";
        w.WriteLine($"<text x=\"12\" y=\"40\" fill=\"#555\">{Esc(report.Machine)}; {Esc(report.Runtime)}</text>");
        w.WriteLine($"<text x=\"12\" y=\"56\" fill=\"#555\">{Esc(report.Native)}; {Esc(probe)}</text>");
        Legend(w, 12, 76);
        w.Write(body.ToString());
        w.WriteLine($"<text x=\"12\" y=\"{height - 10}\" fill=\"#777\" font-size=\"11\">bars: median of kept runs; whisker: min..max; red tick: target threshold; faded bar: placement off (not judged); log axes</text>");
        w.WriteLine("</svg>");
    }

    private static void Legend(TextWriter w, int x, int y)
    {
        foreach (var (group, label) in new[] { (RowGroup.Native, "C reference"), (RowGroup.CSharpRing, "C# ring (in-language limit)"), (RowGroup.Peer, ".NET peer"), (RowGroup.PerCpu, "PerCpu") })
        {
            w.WriteLine($"<rect x=\"{x}\" y=\"{y - 10}\" width=\"12\" height=\"12\" fill=\"{Color(group)}\"/><text x=\"{x + 16}\" y=\"{y}\">{Esc(label)}</text>");
            x += 30 + label.Length * 7;
        }
        w.WriteLine($"<line x1=\"{x}\" y1=\"{y - 11}\" x2=\"{x}\" y2=\"{y + 3}\" stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"{x + 6}\" y=\"{y}\">target</text>");
    }

    private static int Panel(StringWriter w, Layout layout, SuiteReport report, IReadOnlyList<TargetResult> targets, RowKind kind, List<RowResult> rows, int y)
    {
        var (labelRight, axisLeft, axisRight, valueLeft, _) = layout;
        string title = kind switch
        {
            RowKind.Throughput => "Throughput, one sender -> one receiver (M msg/s, log scale; longer is better)",
            RowKind.RoundTrip => "Round trip, request there + reply back (ns, log scale; shorter is better)",
            _ => "Idle runtime cost (% of one core, log scale; shorter is better)",
        };
        double scale = kind == RowKind.Throughput ? 1e-6 : 1;   // axis unit: M msg/s, ns, %
        var values = new List<double>();
        foreach (RowResult r in rows.Where(r => r.Ok))
        {
            values.Add(r.Min * scale);
            values.Add(r.Max * scale);
            values.Add(r.Value * scale);
        }
        foreach (TargetResult t in targets)
            if (t.Line is { } line && rows.Any(r => r.Row.Key == t.RowKey)) values.Add(line * scale);
        values.RemoveAll(v => !(v > 0) || !double.IsFinite(v));
        double lo = values.Count > 0 ? Math.Pow(10, Math.Floor(Math.Log10(values.Min()))) : 1;
        double hi = values.Count > 0 ? Math.Pow(10, Math.Ceiling(Math.Log10(values.Max()))) : 10;
        if (hi <= lo) hi = lo * 10;
        double X(double v) => axisLeft + (Math.Log10(Math.Clamp(v, lo, hi)) - Math.Log10(lo)) / (Math.Log10(hi) - Math.Log10(lo)) * (axisRight - axisLeft);

        w.WriteLine($"<text x=\"12\" y=\"{y + 14}\" font-size=\"14\" font-weight=\"bold\">{Esc(title)}</text>");
        y += 24;
        int top = y + 14, bottom = top + rows.Count * RowHeight;
        // gridlines and labels at 1, 2, 5 of each decade (labels only where they fit)
        int decades = (int)Math.Round(Math.Log10(hi / lo));
        for (double d = lo; d <= hi * 1.0001; d *= 10)
        {
            foreach (double m in new[] { 1.0, 2.0, 5.0 })
            {
                double v = d * m;
                if (v > hi * 1.0001) break;
                double x = X(v);
                bool major = m == 1.0;
                w.WriteLine($"<line x1=\"{x:0.0}\" y1=\"{top - 4}\" x2=\"{x:0.0}\" y2=\"{bottom}\" stroke=\"{(major ? "#ccc" : "#eee")}\"/>");
                if (major || decades <= 3)
                    w.WriteLine($"<text x=\"{x:0.0}\" y=\"{top - 6}\" text-anchor=\"middle\" fill=\"#666\" font-size=\"10\">{Esc(Tick(v))}</text>");
            }
        }
        foreach (RowResult r in rows)
        {
            int cy = top + (RowHeight - BarHeight) / 2;
            string label = r.Row.Name + (r.PlacementOff ? " (placement off)" : "");
            w.WriteLine($"<text x=\"{labelRight}\" y=\"{cy + 11}\" text-anchor=\"end\">{Esc(label)}</text>");
            if (!r.Ok)
            {
                w.WriteLine($"<text x=\"{axisLeft + 4}\" y=\"{cy + 11}\" fill=\"#d62728\">FAILED: {Esc(Clip(r.Error ?? "", 90))}</text>");
                top += RowHeight;
                continue;
            }
            double xv = X(r.Value * scale);
            string opacity = r.PlacementOff ? " fill-opacity=\"0.35\"" : "";
            w.WriteLine($"<rect x=\"{axisLeft}\" y=\"{cy}\" width=\"{Math.Max(1, xv - axisLeft):0.0}\" height=\"{BarHeight}\" fill=\"{Color(r.Row.Group)}\"{opacity}><title>{Esc(r.Row.Key)}: {Esc(r.Row.What)}</title></rect>");
            if (r.Max > r.Min)
            {
                double x1 = X(r.Min * scale), x2 = X(r.Max * scale), my = cy + BarHeight / 2.0;
                w.WriteLine($"<path d=\"M{x1:0.0},{my - 4:0.0}v8M{x1:0.0},{my:0.0}H{x2:0.0}M{x2:0.0},{my - 4:0.0}v8\" stroke=\"black\" stroke-width=\"1\" fill=\"none\"/>");
            }
            foreach (TargetResult t in targets)
            {
                if (t.RowKey != r.Row.Key || t.Line is not { } line) continue;
                double xt = X(line * scale);
                w.WriteLine($"<line x1=\"{xt:0.0}\" y1=\"{cy - 3}\" x2=\"{xt:0.0}\" y2=\"{cy + BarHeight + 3}\" stroke=\"#d62728\" stroke-width=\"2\"><title>{Esc(t.Criterion)}: {Esc(t.Detail)}</title></line>");
            }
            string verdict = Targets.Summarize(targets, r.Row.Key, report.Quick);
            string verdictColor = verdict.Contains("miss", StringComparison.Ordinal) ? "#d62728" : verdict.Contains("pass", StringComparison.Ordinal) ? "#2ca02c" : "#777";
            w.WriteLine($"<text x=\"{valueLeft}\" y=\"{cy + 11}\">{Esc(Format.Value(kind, r.Value))}" +
                        (verdict.Length > 0 ? $" <tspan fill=\"{verdictColor}\">{Esc(verdict)}</tspan>" : "") + "</text>");
            top += RowHeight;
        }
        return bottom;
    }

    /// <summary>Axis label: 0.5, 2, 50, 2k, 100k, 1M.</summary>
    private static string Tick(double v) =>
        v >= 1e6 ? $"{Num(v / 1e6)}M" : v >= 1e3 ? $"{Num(v / 1e3)}k" : Num(v);

    private static string Num(double v) => v.ToString("0.###", Inv);

    private static string Esc(string s) => SecurityElement.Escape(s) ?? "";

    private static string Clip(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";
}
