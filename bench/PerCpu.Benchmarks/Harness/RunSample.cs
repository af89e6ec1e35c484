namespace PerCpu.Benchmarks.Harness;

/// <summary>
/// What one run's timed section measured: elapsed seconds, operations (messages or round trips) and bytes allocated
/// by all threads meanwhile. <see cref="Percent"/> is set only by <see cref="RowKind.Percent"/> rows.
/// </summary>
public readonly record struct RunSample(double Seconds, long Operations, long AllocatedBytes, double Percent = 0, string? Note = null)
{
    public double Value(RowKind kind) => kind switch
    {
        RowKind.Throughput => Operations / Seconds,
        RowKind.RoundTrip => Seconds * 1e9 / Operations,
        _ => Percent,
    };
}
