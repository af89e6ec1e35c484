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
    /// at least 16. A full inbox makes such callers wait (<see cref="Cpu.Send(Action{object?, long}, object?, long)"/>
    /// blocks; <see cref="Cpu.InvokeAsync{T}(Func{T}, CancellationToken)"/> returns a pending task; TrySend fails), so
    /// memory stays bounded. Defaults to 1024.
    /// </summary>
    public int InboxCapacity { get; set; } = 1024;

    /// <summary>
    /// How long an idle CPU polls for work before it parks. Parking and waking a thread costs tens of microseconds on
    /// virtual machines, so a short spin keeps conversations fast without burning an idle core. Zero or more, at most
    /// 24.8 days (<see cref="int.MaxValue"/> milliseconds). Defaults to 50 µs.
    /// </summary>
    public TimeSpan IdleSpin { get; set; } = TimeSpan.FromMicroseconds(50);

    /// <summary>
    /// Never park: idle CPUs poll forever. Lowest latency, but every CPU thread burns its core. Defaults to <see langword="false"/>.
    /// </summary>
    public bool PollMode { get; set; }

    /// <summary>
    /// How long a passive message (<see cref="Cpu.SendPassive(Action{object?, long}, object?, long)"/>) to a parked CPU
    /// may wait: the send does not wake the CPU, but arranges one wake this much later. Idle is tickless: a parked CPU
    /// does not wake periodically, only for a sender, its earliest <see cref="CpuTimer"/> or <see cref="Cpu.Delay"/>, or
    /// such a deferred wake. Positive, at most 24.8 days (<see cref="int.MaxValue"/> milliseconds).
    /// Defaults to 10 ms.
    /// </summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// How long a CPU waits on another (a full ring, <see cref="Cpu.WaitFor(long)"/>) before it raises
    /// <see cref="CpuRuntime.Warning"/>. Positive, at most 24.8 days (<see cref="int.MaxValue"/> milliseconds). Defaults to 1 s.
    /// </summary>
    public TimeSpan WaitWarning { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a CPU waits on another before it gives up with a <see cref="TimeoutException"/>. Positive, at most
    /// 24.8 days (<see cref="int.MaxValue"/> milliseconds). Defaults to 10 s.
    /// </summary>
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

    /// <summary>
    /// How long a function, soft interrupt, task or cpusync hold may keep a CPU from its dispatch loop before the stall
    /// watchdog reports it (Seastar's "reactor stalled", Linux's soft-lockup report): once per stall, through
    /// <see cref="CpuRuntime.Warning"/>, the <c>PerCpu</c> event source and the <c>percpu.stalls</c> counter, naming the
    /// CPU, what it is running, for how long, and how many messages wait behind it. A parked CPU that has not drained
    /// work published to it for this long is woken again (DragonFly's "target not draining" re-send). The watchdog
    /// looks every half threshold; the CPUs only store a stamp and a phase per step, which costs nothing measurable.
    /// <see cref="TimeSpan.Zero"/> or <see cref="Timeout.InfiniteTimeSpan"/> turns the watchdog off; otherwise positive,
    /// at most 24.8 days (<see cref="int.MaxValue"/> milliseconds). Defaults to 50 ms.
    /// </summary>
    public TimeSpan StallThreshold { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Test hook: false creates the stall watchdog without its timer, for tests that drive it with <c>CheckNow</c>. Defaults to true.</summary>
    internal bool StallWatchdogTimer { get; set; } = true;

    /// <summary>True if <see cref="StallThreshold"/> turns the watchdog on.</summary>
    internal bool StallWatchdogEnabled => StallThreshold != TimeSpan.Zero && StallThreshold != Timeout.InfiniteTimeSpan;

    /// <summary>
    /// The longest <see cref="TickInterval"/>, <see cref="WaitWarning"/>, <see cref="WaitTimeout"/>,
    /// <see cref="IdleSpin"/> and <see cref="StallThreshold"/> accepted: <see cref="int.MaxValue"/> milliseconds (about
    /// 24.8 days), the longest finite timeout that <see cref="ManualResetEventSlim.Wait(TimeSpan)"/>,
    /// <see cref="Task.Wait(TimeSpan)"/> and <see cref="Monitor.Wait(object, TimeSpan)"/> take. The runtime passes these
    /// settings to such waits (a parked CPU without a futex, disposal, outside callers), where a longer one would throw.
    /// </summary>
    internal static readonly TimeSpan MaxTimeSpan = TimeSpan.FromMilliseconds(int.MaxValue);

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
        if (StallWatchdogEnabled)
            CheckSpan(StallThreshold, nameof(StallThreshold), allowZero: false, " (or TimeSpan.Zero or Timeout.InfiniteTimeSpan to turn the stall watchdog off)");
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

    private static void CheckSpan(TimeSpan value, string name, bool allowZero, string? alternative = null)
    {
        if (value < TimeSpan.Zero || (!allowZero && value == TimeSpan.Zero) || value == Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a positive, finite time span{alternative}.");
        if (value > MaxTimeSpan)
            throw new ArgumentOutOfRangeException(name, value,
                $"{name} is {value}, longer than {MaxTimeSpan} (int.MaxValue milliseconds, about 24.8 days): the longest timeout " +
                "that Task.Wait, ManualResetEventSlim.Wait and Monitor.Wait accept, and the runtime passes this setting to such waits. " +
                $"Use at most TimeSpan.FromMilliseconds(int.MaxValue){alternative}: a value that long already means practically never.");
    }

    /// <summary>
    /// Where the meter comes from (<see cref="CpuRuntime.Start(CpuRuntimeOptions?, System.Diagnostics.Metrics.IMeterFactory?)"/>);
    /// null: the runtime creates and disposes its own. Not a public setting: an interface-typed property would trip
    /// configuration binders (PerCpu.Hosting binds these options from IConfiguration).
    /// </summary>
    internal System.Diagnostics.Metrics.IMeterFactory? MeterFactory { get; set; }

    /// <summary>
    /// Test hook: CPU-owned sockets use the portable backend (.NET's asynchronous <see cref="System.Net.Sockets.Socket"/>,
    /// completions posted to the owning CPU) even where the epoll reactor is available.
    /// </summary>
    internal bool SocketBackend { get; set; }
}
