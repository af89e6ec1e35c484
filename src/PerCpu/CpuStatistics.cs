namespace PerCpu;

/// <summary>
/// A snapshot of IPI statistics (the seed's <c>ipiq_stats</c>), for one CPU or summed over a runtime. Counts start at
/// zero, or at the last <see cref="CpuRuntime.ResetStatistics"/>.
/// </summary>
public readonly record struct CpuStatistics
{
    /// <summary>Messages sent from this CPU, to itself included (seed: <c>ipiq_count</c>); for a runtime, sends from outside threads too.</summary>
    public long Sent { get; init; }

    /// <summary>Sends that found the ring over half full and had to wait, draining their own queue meanwhile (<c>ipiq_fifofull</c>).</summary>
    public long FifoFull { get; init; }

    /// <summary>Sends that needed no wake-up because the target was awake (<c>ipiq_avoided</c>).</summary>
    public long Avoided { get; init; }

    /// <summary>Passive sends (<c>ipiq_passive</c>).</summary>
    public long Passive { get; init; }

    /// <summary><see cref="Cpu.TrySend(Action{object?, long}, object?, long)"/> calls refused because the ring was two-thirds full.</summary>
    public long SendFailed { get; init; }

    /// <summary>Wake-ups of parked CPUs that this CPU issued (the "hardware IPI").</summary>
    public long WakesSent { get; init; }

    /// <summary>Times this CPU was woken from a park by a sender (not by its tick).</summary>
    public long WakesReceived { get; init; }

    /// <summary>Messages this CPU executed.</summary>
    public long Received { get; init; }

    /// <summary>Exceptions thrown by functions, tasks or handlers on this CPU and reported to <see cref="CpuRuntime.UnhandledException"/>.</summary>
    public long Errors { get; init; }

    /// <summary>CPU synchronizations (interlocks) this CPU mastered (<c>ipiq_cscount</c>).</summary>
    public long CpuSyncs { get; init; }

    /// <summary>
    /// Stalls the stall watchdog reported on this CPU: a function, handler, task or cpusync hold that kept it from its
    /// loop for longer than <see cref="CpuRuntimeOptions.StallThreshold"/>, or a parked CPU woken again because it left
    /// published work undrained that long.
    /// </summary>
    public long Stalls { get; init; }

    /// <summary>Field-wise sum.</summary>
    public static CpuStatistics operator +(CpuStatistics a, CpuStatistics b) => new()
    {
        Sent = a.Sent + b.Sent, FifoFull = a.FifoFull + b.FifoFull, Avoided = a.Avoided + b.Avoided,
        Passive = a.Passive + b.Passive, SendFailed = a.SendFailed + b.SendFailed, WakesSent = a.WakesSent + b.WakesSent,
        WakesReceived = a.WakesReceived + b.WakesReceived, Received = a.Received + b.Received, Errors = a.Errors + b.Errors,
        CpuSyncs = a.CpuSyncs + b.CpuSyncs, Stalls = a.Stalls + b.Stalls,
    };

    /// <summary>Field-wise difference.</summary>
    public static CpuStatistics operator -(CpuStatistics a, CpuStatistics b) => new()
    {
        Sent = a.Sent - b.Sent, FifoFull = a.FifoFull - b.FifoFull, Avoided = a.Avoided - b.Avoided,
        Passive = a.Passive - b.Passive, SendFailed = a.SendFailed - b.SendFailed, WakesSent = a.WakesSent - b.WakesSent,
        WakesReceived = a.WakesReceived - b.WakesReceived, Received = a.Received - b.Received, Errors = a.Errors - b.Errors,
        CpuSyncs = a.CpuSyncs - b.CpuSyncs, Stalls = a.Stalls - b.Stalls,
    };
}
