using System.Diagnostics;

namespace PerCpu.SoftInterrupts;

/// <summary>
/// A runtime's soft interrupts: the bounded table of established handles (the seed's slot search in
/// <c>softint_establish</c>) and every CPU's <see cref="SoftCpu"/>. Created by the first
/// <see cref="CpuRuntime.Establish(SoftLevel, Action{object?}, object?)"/>. Establishing and freeing take
/// <see cref="_lock"/>; nothing on a scheduling or dispatch path does.
/// </summary>
[DebuggerDisplay("Soft interrupt table: {_count} of {Capacity} established")]
internal sealed class SoftInterruptTable
{
    internal const int LevelCount = 4;

    internal readonly CpuRuntime Runtime;

    /// <summary>By CPU id. Each is touched by its CPU only (see <see cref="SoftCpu"/>).</summary>
    internal readonly SoftCpu[] Cpus;

    /// <summary>Options.SoftInterruptTiming, copied here so that dispatch reads one field.</summary>
    internal readonly bool Timing;

    /// <summary>Established handles by slot; a slot is free again only once no CPU can refer to it. Under <see cref="_lock"/>.</summary>
    private readonly SoftInterrupt?[] _slots;
    private int _count;
    private readonly Lock _lock = new();

    internal SoftInterruptTable(CpuRuntime runtime, int capacity, bool timing)
    {
        Runtime = runtime;
        Timing = timing;
        _slots = new SoftInterrupt?[capacity];
        Cpus = new SoftCpu[runtime.CpuCount];
        for (int i = 0; i < Cpus.Length; i++) Cpus[i] = new SoftCpu(runtime[i], capacity);
    }

    internal int Capacity => _slots.Length;

    /// <summary>Claims a free slot for a handle built by <paramref name="create"/> (seed: <c>softint_establish</c>).</summary>
    /// <exception cref="InvalidOperationException">Every slot is taken.</exception>
    internal SoftInterrupt Add<TState>(Func<SoftInterruptTable, int, TState, SoftInterrupt> create, TState state)
    {
        lock (_lock)
        {
            if (_count == _slots.Length)
                throw new InvalidOperationException(
                    $"The soft interrupt table is full: {_slots.Length} soft interrupts are established (CpuRuntimeOptions.MaxSoftInterrupts). " +
                    "Dispose the ones you no longer need, share one handler among several sources, or raise MaxSoftInterrupts.");
            int slot = Array.IndexOf(_slots, null);
            SoftInterrupt handle = create(this, slot, state);
            _slots[slot] = handle;
            _count++;
            return handle;
        }
    }

    /// <summary>Frees a disposed handle's slot; the caller has made sure that no CPU still refers to it.</summary>
    internal void Free(SoftInterrupt handle)
    {
        lock (_lock)
        {
            Debug.Assert(_slots[handle.Slot] == handle);
            _slots[handle.Slot] = null;
            _count--;
        }
    }
}
