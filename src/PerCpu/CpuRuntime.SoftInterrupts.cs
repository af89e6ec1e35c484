using PerCpu.SoftInterrupts;

namespace PerCpu;

// Soft interrupts (NetBSD kern_softint.c): establishing handlers and the runtime-wide statistics.
public sealed partial class CpuRuntime
{
    /// <summary>The soft interrupt table, created by the first Establish (under <see cref="_softInterruptsLock"/>, published with a release store); read by anyone.</summary>
    private SoftInterruptTable? _softInterrupts;
    private readonly Lock _softInterruptsLock = new();

    /// <summary>The soft interrupt table, or null while none has been established (acquire: pairs with its publication).</summary>
    internal SoftInterruptTable? SoftInterruptTableOrNull => Volatile.Read(ref _softInterrupts);

    /// <summary>
    /// Establishes a soft interrupt (seed: <c>softint_establish</c>): <paramref name="handler"/>(<paramref name="state"/>)
    /// runs on a CPU after <see cref="SoftInterrupt.Schedule"/> there or <see cref="SoftInterrupt.ScheduleOn(Cpu)"/> to it,
    /// after that CPU's IPIs and before its tasks, higher levels first. Keep handlers short: a CPU runs nothing but IPIs
    /// while one runs.
    /// </summary>
    /// <param name="level">The priority.</param>
    /// <param name="handler">The handler; a static lambda with its data in <paramref name="state"/> keeps dispatch allocation-free. An exception it throws is counted and reported to <see cref="UnhandledException"/>.</param>
    /// <param name="state">Passed to <paramref name="handler"/>.</param>
    /// <returns>The handle, valid on every CPU of this runtime; dispose it to disestablish.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="handler"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="level"/> is not a defined <see cref="SoftLevel"/>.</exception>
    /// <exception cref="InvalidOperationException">The table is full: <see cref="CpuRuntimeOptions.MaxSoftInterrupts"/> soft interrupts are established.</exception>
    /// <exception cref="ObjectDisposedException">The runtime is disposed.</exception>
    public SoftInterrupt Establish(SoftLevel level, Action<object?> handler, object? state = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return EstablishCore(level, handler, state);
    }

    /// <summary>
    /// Establishes a soft interrupt with an asynchronous handler; otherwise as
    /// <see cref="Establish(SoftLevel, Action{object?}, object?)"/>. Until the task a run returns has completed, that
    /// level on that CPU runs nothing else (the run "blocks", and is counted in <see cref="SoftInterruptStatistics.Blocks"/>);
    /// other levels, IPIs and tasks go on, and the handler's awaits resume on that CPU.
    /// </summary>
    /// <param name="level">The priority.</param>
    /// <param name="handler">The asynchronous handler. An exception it throws, or its task ends with, is counted and reported to <see cref="UnhandledException"/>.</param>
    /// <param name="state">Passed to <paramref name="handler"/>.</param>
    /// <returns>The handle, valid on every CPU of this runtime; dispose it to disestablish.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="handler"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="level"/> is not a defined <see cref="SoftLevel"/>.</exception>
    /// <exception cref="InvalidOperationException">The table is full: <see cref="CpuRuntimeOptions.MaxSoftInterrupts"/> soft interrupts are established.</exception>
    /// <exception cref="ObjectDisposedException">The runtime is disposed.</exception>
    public SoftInterrupt Establish(SoftLevel level, Func<object?, ValueTask> handler, object? state = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return EstablishCore(level, handler, state);
    }

    private SoftInterrupt EstablishCore(SoftLevel level, Delegate handler, object? state)
    {
        CheckSoftLevel(level);
        if (IsDisposed)
            throw new ObjectDisposedException(nameof(CpuRuntime), "The CpuRuntime is disposed (or being disposed): it establishes no new soft interrupts.");
        SoftInterruptTable table = SoftInterruptTableOrNull ?? CreateSoftInterruptTable();
        return table.Add(static (t, slot, s) => new SoftInterrupt(t, slot, s.level, s.handler, s.state), (level, handler, state));
    }

    private SoftInterruptTable CreateSoftInterruptTable()
    {
        lock (_softInterruptsLock)
        {
            SoftInterruptTable? table = _softInterrupts;
            if (table == null)
            {
                CpuRuntimeOptions options = _shared.Options;
                table = new SoftInterruptTable(this, options.MaxSoftInterrupts, options.SoftInterruptTiming);
                // Release: the table and every CPU's state are fully built before anyone can read them.
                Volatile.Write(ref _softInterrupts, table);
            }
            return table;
        }
    }

    internal static void CheckSoftLevel(SoftLevel level)
    {
        if ((uint)level > (uint)SoftLevel.Serial)
            throw new ArgumentOutOfRangeException(nameof(level), level, "A soft interrupt level is SoftLevel.Clock, Bio, Net or Serial.");
    }

    /// <summary>Soft interrupt statistics at <paramref name="level"/>, summed over every CPU, since the last <see cref="ResetStatistics"/>.</summary>
    /// <param name="level">The level.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="level"/> is not a defined <see cref="SoftLevel"/>.</exception>
    public SoftInterruptStatistics GetSoftInterruptStatistics(SoftLevel level)
    {
        CheckSoftLevel(level);
        SoftInterruptStatistics sum = default;
        foreach (Cpu cpu in _cpus) sum += cpu.GetSoftInterruptStatistics(level);
        return sum;
    }

    /// <summary>The soft interrupt half of <see cref="ResetStatistics"/>: the current counts become the baselines.</summary>
    private void ResetSoftInterruptStatistics()
    {
        SoftInterruptTable? table = SoftInterruptTableOrNull;
        if (table == null) return;
        foreach (SoftCpu soft in table.Cpus)
        {
            var baselines = new SoftInterruptStatistics[SoftInterruptTable.LevelCount];
            for (int i = 0; i < baselines.Length; i++) baselines[i] = soft.Levels[i].Snapshot();
            Volatile.Write(ref soft.Baselines, baselines);
        }
    }
}
