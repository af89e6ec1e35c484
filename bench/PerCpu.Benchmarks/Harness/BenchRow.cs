namespace PerCpu.Benchmarks.Harness;

/// <summary>What a row's value means; decides how a run's seconds and operations turn into the value.</summary>
public enum RowKind
{
    /// <summary>Messages per second, one producer to one consumer (higher is better).</summary>
    Throughput,

    /// <summary>Nanoseconds per round trip: one request there, one reply back (lower is better).</summary>
    RoundTrip,

    /// <summary>Percent of one core (lower is better); the run computes the value itself.</summary>
    Percent,
}

/// <summary>Where a row comes from; the ratio columns compare against groups.</summary>
public enum RowGroup
{
    /// <summary>The C reference (bench/native): the physical limit of this machine.</summary>
    Native,

    /// <summary>The same ring written plainly in C#: the in-language limit, not a stock .NET means.</summary>
    CSharpRing,

    /// <summary>Stock .NET means (Channel, ConcurrentQueue, ...): "best .NET peer" is the best of these.</summary>
    Peer,

    /// <summary>The library under test.</summary>
    PerCpu,
}

/// <summary>
/// One row of the suite. <see cref="Run"/> performs n messages or round trips, verifies delivery (it throws on a
/// lost, duplicated or reordered message) and reports only its timed section.
/// </summary>
public sealed class BenchRow
{
    /// <summary>Stable identifier ("c.ring", "percpu.send"): the key of ratios, targets, --filter and the JSON.</summary>
    public required string Key { get; init; }

    /// <summary>Display name.</summary>
    public required string Name { get; init; }

    public required RowKind Kind { get; init; }

    public required RowGroup Group { get; init; }

    /// <summary>One line: what the row does, for the notes under the table.</summary>
    public required string What { get; init; }

    /// <summary>Performs n operations and returns what its timed section measured.</summary>
    public required Func<long, RunSample> Run { get; init; }

    /// <summary>The C row this one is compared with in the "×C" column, or null for none.</summary>
    public string? CompareWith { get; init; }

    /// <summary>Count for --quick: just enough to show the row works.</summary>
    public long QuickCount { get; init; } = 1000;

    /// <summary>Upper bound on the calibrated count per run.</summary>
    public long MaxCount { get; init; } = 200_000_000;

    /// <summary>When set, every full run uses this count instead of calibrating (e.g. milliseconds of idling).</summary>
    public long? FixedCount { get; init; }

    /// <summary>Runs to keep in full mode.</summary>
    public int Runs { get; init; } = 5;

    /// <summary>Whether runs are kept only when the placement probes around them agree with the reference.</summary>
    public bool Gated { get; init; } = true;

    public bool Matches(IReadOnlyList<string> filters)
    {
        if (filters.Count == 0) return true;
        foreach (string f in filters)
            if (Key.Contains(f, StringComparison.OrdinalIgnoreCase) || Name.Contains(f, StringComparison.OrdinalIgnoreCase))
                return true;
        return false;
    }
}
