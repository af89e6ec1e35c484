namespace PerCpu;

/// <summary>
/// Settings for <see cref="CpuRuntime.Start(CpuRuntimeOptions?)"/>. Every property documents its default;
/// the options are validated (and copied) when the runtime starts, so changing them later has no effect.
/// </summary>
public sealed class CpuRuntimeOptions
{
    /// <summary>Number of virtual CPUs (dedicated threads). Defaults to <see cref="Environment.ProcessorCount"/>.</summary>
    public int CpuCount { get; set; } = Environment.ProcessorCount;

    /// <summary>
    /// Pin each CPU thread to a core (Linux: <c>sched_setaffinity</c> from the thread itself). Where the OS does not
    /// allow it the runtime runs unpinned and says so in <see cref="CpuRuntime.ThreadsPinned"/>. Defaults to <see langword="true"/>.
    /// </summary>
    public bool PinThreads { get; set; } = true;

    /// <summary>Slots in each per-pair IPI ring; a power of two, at least 16. Defaults to 512.</summary>
    public int FifoCapacity { get; set; } = 512;

    /// <summary>
    /// Slots in each CPU's inbox for calls from threads that are not CPUs (thread pool, <c>Main</c>); a power of two,
    /// at least 16. A full inbox makes such callers wait, so memory stays bounded. Defaults to 1024.
    /// </summary>
    public int InboxCapacity { get; set; } = 1024;

    /// <summary>
    /// How long an idle CPU polls for work before it parks. Parking and waking a thread costs tens of microseconds on
    /// virtual machines, so a short spin keeps conversations fast without burning an idle core. Defaults to 50 µs.
    /// </summary>
    public TimeSpan IdleSpin { get; set; } = TimeSpan.FromMicroseconds(50);

    /// <summary>
    /// Never park: idle CPUs poll forever. Lowest latency, but every CPU thread burns its core. Defaults to <see langword="false"/>.
    /// </summary>
    public bool PollMode { get; set; }

    /// <summary>
    /// The per-CPU tick: the longest a parked CPU sleeps before it looks for passive messages
    /// (<see cref="Cpu.SendPassive(Action{object?, long}, object?, long)"/>). Defaults to 10 ms.
    /// </summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>How long a CPU waits on another (a full ring, <see cref="Cpu.WaitFor(long)"/>) before it raises <see cref="CpuRuntime.Warning"/>. Defaults to 1 s.</summary>
    public TimeSpan WaitWarning { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a CPU waits on another before it gives up with a <see cref="TimeoutException"/>. Defaults to 10 s.</summary>
    public TimeSpan WaitTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Name prefix of the CPU threads, as shown by debuggers and <c>top -H</c>. Defaults to <c>"percpu"</c>.</summary>
    public string ThreadName { get; set; } = "percpu";

    /// <summary>
    /// Most soft interrupts established at once (<see cref="CpuRuntime.Establish(SoftLevel, Action{object?}, object?)"/>);
    /// each CPU keeps a small record per slot. Between 1 and 65536. Defaults to 256.
    /// </summary>
    public int MaxSoftInterrupts { get; set; } = 256;

    /// <summary>
    /// Measure the time spent in soft interrupt handlers per CPU and level (<see cref="SoftInterruptStatistics.Time"/>;
    /// the seed's <c>softint_timing</c>): two timestamps per handler run. Defaults to <see langword="false"/>.
    /// </summary>
    public bool SoftInterruptTiming { get; set; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> with a message that says how to fix the first bad setting.</summary>
    internal CpuRuntimeOptions Validate()
    {
        if (CpuCount <= 0)
            throw new ArgumentOutOfRangeException(nameof(CpuCount), CpuCount, "CpuCount must be at least 1 (it defaults to Environment.ProcessorCount).");
        if (CpuCount > 4096)
            throw new ArgumentOutOfRangeException(nameof(CpuCount), CpuCount, "CpuCount must be at most 4096: the IPI ring matrix grows with the square of the count.");
        CheckPowerOfTwo(FifoCapacity, nameof(FifoCapacity));
        CheckPowerOfTwo(InboxCapacity, nameof(InboxCapacity));
        CheckSpan(IdleSpin, nameof(IdleSpin), allowZero: true);
        CheckSpan(TickInterval, nameof(TickInterval), allowZero: false);
        CheckSpan(WaitWarning, nameof(WaitWarning), allowZero: false);
        CheckSpan(WaitTimeout, nameof(WaitTimeout), allowZero: false);
        ArgumentNullException.ThrowIfNull(ThreadName);
        if (MaxSoftInterrupts < 1 || MaxSoftInterrupts > 65536)
            throw new ArgumentOutOfRangeException(nameof(MaxSoftInterrupts), MaxSoftInterrupts, "MaxSoftInterrupts must be between 1 and 65536 (it defaults to 256).");
        return (CpuRuntimeOptions)MemberwiseClone();
    }

    private static void CheckPowerOfTwo(int value, string name)
    {
        if (value < 16 || value > (1 << 24) || (value & (value - 1)) != 0)
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a power of two between 16 and 16777216 (for example 512 or 1024).");
    }

    private static void CheckSpan(TimeSpan value, string name, bool allowZero)
    {
        if (value < TimeSpan.Zero || (!allowZero && value == TimeSpan.Zero) || value == Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a positive, finite time span.");
    }
}
