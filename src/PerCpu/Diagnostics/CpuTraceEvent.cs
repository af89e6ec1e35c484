namespace PerCpu.Diagnostics;

/// <summary>One event of a <see cref="CpuTrace"/>: a trace point that a CPU passed, with the seed's KTR arguments.</summary>
public readonly record struct CpuTraceEvent
{
    /// <summary>When it happened, as a <see cref="System.Diagnostics.Stopwatch.GetTimestamp"/> value (full resolution).</summary>
    public long Timestamp { get; init; }

    /// <summary>When it happened, since <see cref="CpuRuntime.StartTrace"/> (100 ns resolution; <see cref="Timestamp"/> has more).</summary>
    public TimeSpan Time { get; init; }

    /// <summary>The CPU that recorded it (whose track it is on).</summary>
    public int Cpu { get; init; }

    /// <summary>
    /// The trace point, named as in the seed's KTR: <c>send_norm</c>, <c>send_pasv</c>, <c>send_nbio</c> (a send began),
    /// <c>send_fail</c> (a try-send was refused), <c>send_end</c>, <c>receive</c> (a message is about to run on its
    /// target), <c>cpu_send</c> (a parked CPU was woken), <c>sync_start</c>, <c>sync_end</c> (cpusync),
    /// <c>softint_entry</c>, <c>softint_exit</c>.
    /// </summary>
    public string Name { get; init; }

    /// <summary>The CPU that sent the message; -1 for a thread that is not a CPU.</summary>
    public int SourceCpu { get; init; }

    /// <summary>The CPU the message is for.</summary>
    public int TargetCpu { get; init; }

    /// <summary>The function, as <c>Type.Method</c>; <see langword="null"/> for points without one (<c>cpu_send</c>).</summary>
    public string? Function { get; init; }

    /// <summary>The message's second argument; for <c>cpu_send</c>, the number of messages the wake-up served.</summary>
    public long Argument { get; init; }

    /// <summary>The trace point as an enum, for the exporter.</summary>
    internal TraceEvent Kind { get; init; }
}
