using System.Globalization;
using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Report;

/// <summary>How figures print: one unit per kind, so rows of a kind compare at a glance.</summary>
public static class Format
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static string Unit(RowKind kind) => kind switch
    {
        RowKind.Throughput => "M msg/s",
        RowKind.RoundTrip => "ns",
        _ => "% of one core",
    };

    /// <summary>The number alone, in the kind's unit (M msg/s, ns, %).</summary>
    public static string Number(RowKind kind, double v) => kind switch
    {
        RowKind.Throughput => Significant(v / 1e6),
        RowKind.RoundTrip => v >= 100 ? v.ToString("#,0", Inv) : v.ToString("0.0", Inv),
        _ => v.ToString("0.00", Inv),
    };

    public static string Value(RowKind kind, double v) => kind switch
    {
        RowKind.Throughput => $"{Number(kind, v)} M/s",
        RowKind.RoundTrip => $"{Number(kind, v)} ns",
        _ => $"{Number(kind, v)} %",
    };

    public static string Spread(RowKind kind, double min, double max) => $"{Number(kind, min)}..{Number(kind, max)}";

    public static string Ratio(double? r) => r is not { } x ? "" : x >= 100 ? x.ToString("0", Inv) : x >= 10 ? x.ToString("0.0", Inv) : x.ToString("0.00", Inv);

    public static string Bytes(double b) => b == 0 ? "0" : b < 0.01 ? "<0.01" : b < 10 ? b.ToString("0.00", Inv) : b.ToString("0", Inv);

    /// <summary>Three significant digits, no exponent.</summary>
    public static string Significant(double v) =>
        v >= 100 ? v.ToString("0", Inv) : v >= 10 ? v.ToString("0.0", Inv) : v >= 1 ? v.ToString("0.00", Inv) : v.ToString("0.000", Inv);

    /// <summary>Short label of a C reference row for the "vs" column.</summary>
    public static string Short(string? key) => key switch
    {
        null => "",
        "c.ring" => "ring",
        "c.batched" => "batch",
        "c.pingpong" => "pp",
        "c.futex" => "futex",
        "c.line" => "line",
        _ => key,
    };
}
