using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace PerCpu.SoftInterrupts;

/// <summary>
/// One level of one CPU (the seed's <c>softint_t</c>): the FIFO of pending handlers, the asynchronous handler the level
/// is blocked on, if any, and the level's event counters. Owner thread only, except that other threads read the
/// counters (volatile reads of 64-bit fields that only the owner writes: they may lag, never tear).
/// </summary>
[DebuggerDisplay("{Level} on CPU {Owner.Cpu.Id}: head {Head}, blocked on {Blocked}")]
internal sealed class SoftLevelQueue
{
    internal readonly SoftCpu Owner;
    internal readonly SoftLevel Level;

    /// <summary>1 &lt;&lt; <see cref="Level"/>: this level's bit in <see cref="SoftCpu.PendingLevels"/> and <see cref="SoftCpu.BlockedLevels"/>.</summary>
    internal readonly int Bit;

    /// <summary>First and last slot of the FIFO (the seed's <c>si_q</c>), -1 when empty. Owner only.</summary>
    internal int Head = -1, Tail = -1;

    /// <summary>The asynchronous handler whose run has not completed: the level runs nothing else until it has (owner only).</summary>
    internal SoftInterrupt? Blocked;

    /// <summary>The slot of <see cref="Blocked"/> (owner only).</summary>
    internal int BlockedSlot;

    /// <summary>The awaiter of <see cref="Blocked"/>'s run (owner only).</summary>
    internal ConfiguredValueTaskAwaitable.ConfiguredValueTaskAwaiter BlockedAwaiter;

    /// <summary>The continuation registered on <see cref="BlockedAwaiter"/>; built once, so blocking allocates nothing here.</summary>
    internal readonly Action OnBlockedCompleted;

    /// <summary>Event counters (seed: <c>si_evcnt</c>, <c>si_evcnt_block</c>), plus errors and time. Owner writes, anyone reads.</summary>
    internal long Count, Blocks, Errors, TimeTicks;

    internal SoftLevelQueue(SoftCpu owner, SoftLevel level)
    {
        Owner = owner;
        Level = level;
        Bit = 1 << (int)level;
        OnBlockedCompleted = () => Owner.Cpu.CompleteBlockedSoftInterrupt(this);
    }

    internal SoftInterruptStatistics Snapshot() => new()
    {
        Count = Volatile.Read(ref Count), Blocks = Volatile.Read(ref Blocks),
        Errors = Volatile.Read(ref Errors), TimeTicks = Volatile.Read(ref TimeTicks),
    };
}
