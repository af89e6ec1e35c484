using System.Diagnostics;

namespace PerCpu;

/// <summary>
/// Soft interrupt statistics of one level (the seed's <c>si_evcnt</c> and <c>si_evcnt_block</c> event counters), for
/// one CPU (<see cref="Cpu.GetSoftInterruptStatistics(SoftLevel)"/>) or summed over a runtime
/// (<see cref="CpuRuntime.GetSoftInterruptStatistics(SoftLevel)"/>). Counts start at zero, or at the last
/// <see cref="CpuRuntime.ResetStatistics"/>.
/// </summary>
public readonly record struct SoftInterruptStatistics
{
    /// <summary>Handler runs started at this level.</summary>
    public long Count { get; init; }

    /// <summary>Runs of an asynchronous handler that did not complete at once: the level waited for them (<c>softint_block</c>).</summary>
    public long Blocks { get; init; }

    /// <summary>Runs that ended in an exception (each is also reported to <see cref="CpuRuntime.UnhandledException"/> and counted in <see cref="CpuStatistics.Errors"/>).</summary>
    public long Errors { get; init; }

    /// <summary>
    /// Time spent in handlers at this level, until each returned its first time (an asynchronous handler's later
    /// continuations run as tasks and are not included). Zero unless <see cref="CpuRuntimeOptions.SoftInterruptTiming"/>
    /// is on (the seed's <c>softint_timing</c>).
    /// </summary>
    public TimeSpan Time => Stopwatch.GetElapsedTime(0, TimeTicks);

    /// <summary>The raw <see cref="Stopwatch"/> ticks behind <see cref="Time"/>.</summary>
    internal long TimeTicks { get; init; }

    /// <summary>Field-wise sum.</summary>
    /// <param name="a">The first operand.</param>
    /// <param name="b">The second operand.</param>
    public static SoftInterruptStatistics operator +(SoftInterruptStatistics a, SoftInterruptStatistics b) => new()
    {
        Count = a.Count + b.Count, Blocks = a.Blocks + b.Blocks, Errors = a.Errors + b.Errors, TimeTicks = a.TimeTicks + b.TimeTicks,
    };

    /// <summary>Field-wise difference.</summary>
    /// <param name="a">The first operand.</param>
    /// <param name="b">The second operand.</param>
    public static SoftInterruptStatistics operator -(SoftInterruptStatistics a, SoftInterruptStatistics b) => new()
    {
        Count = a.Count - b.Count, Blocks = a.Blocks - b.Blocks, Errors = a.Errors - b.Errors, TimeTicks = a.TimeTicks - b.TimeTicks,
    };
}
