namespace PerCpu.Benchmarks.Harness;

/// <summary>The outcome of one row: the median of its kept runs, their spread, and what went on around them.</summary>
public sealed class RowResult
{
    public required BenchRow Row { get; init; }

    /// <summary>Null when the row ran; otherwise why it failed (an exception, a verification failure).</summary>
    public string? Error { get; init; }

    /// <summary>Median of the kept runs (of all runs when the placement never settled).</summary>
    public double Value { get; init; }

    public double Min { get; init; }

    public double Max { get; init; }

    /// <summary>Values of every run tried, kept or not, in order.</summary>
    public IReadOnlyList<double> AllRuns { get; init; } = [];

    public int RunsKept { get; init; }

    public int RunsTried { get; init; }

    /// <summary>Fewer than 3 runs met the placement gate: the value is the median of all runs and is not judged.</summary>
    public bool PlacementOff { get; init; }

    /// <summary>Median of the probes around the kept runs (ns), or 0 when none were taken.</summary>
    public double ProbeNs { get; init; }

    /// <summary>Bytes allocated per message or round trip, all threads, timed sections only.</summary>
    public double BytesPerOp { get; init; }

    /// <summary>Voluntary context switches per operation (this process and the native child): 0 = nobody slept.</summary>
    public double SleepsPerOp { get; init; }

    public double OthersPercent { get; init; }

    public double StealPercent { get; init; }

    /// <summary>Operations per run.</summary>
    public long Count { get; init; }

    /// <summary>Extra remarks from the runs (e.g. how many futex waits slept).</summary>
    public string? Note { get; init; }

    /// <summary>Why the row stopped before it had tried all its runs (its time budget), or null.</summary>
    public string? StoppedEarly { get; init; }

    public bool Ok => Error is null;
}
