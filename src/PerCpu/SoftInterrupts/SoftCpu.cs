using System.Diagnostics;

namespace PerCpu.SoftInterrupts;

/// <summary>
/// One CPU's soft interrupt state (the seed's <c>softcpu_t</c>): a record per table slot and a queue per level. Touched
/// only by the owning CPU thread (the seed needs no spinlocks for the same reason) except where a member says otherwise.
/// Padded at both ends: the runtime allocates the CPUs' states one after another.
/// </summary>
[DebuggerDisplay("Soft interrupts of CPU {Cpu.Id}: pending {PendingLevels}, blocked {BlockedLevels}")]
internal sealed class SoftCpu
{
#pragma warning disable CS0169, IDE0051 // padding
    private readonly long _pad0, _pad1, _pad2, _pad3, _pad4, _pad5, _pad6, _pad7;
#pragma warning restore CS0169, IDE0051

    /// <summary>Levels whose FIFO is not empty (the seed's <c>ci_softints</c>). Owner only.</summary>
    internal int PendingLevels;

    /// <summary>Levels waiting for an asynchronous handler to complete. Owner only.</summary>
    internal int BlockedLevels;

    /// <summary>The handler whose synchronous part is on this CPU's stack, if any (disposing it from there would wait for itself). Owner only.</summary>
    internal SoftInterrupt? Running;

    /// <summary>Handlers queued here (monotonic; owner writes, the shutdown check reads).</summary>
    internal long Accepted;

    /// <summary>Queued handlers that have finished: run to completion, or dropped because their handle was disposed (monotonic; owner writes with release, so that the matching <see cref="Accepted"/> is visible first).</summary>
    internal long Finished;

    internal readonly Cpu Cpu;

    /// <summary>Per slot (the seed's <c>sc_hand[]</c>); a few spare records at the end keep the next CPU's data off the last line.</summary>
    internal readonly SoftHand[] Hands;

    /// <summary>Per <see cref="SoftLevel"/> (the seed's <c>sc_int[]</c>).</summary>
    internal readonly SoftLevelQueue[] Levels;

    /// <summary>Statistics per level at the last reset; replaced whole (by any thread), never mutated.</summary>
    internal SoftInterruptStatistics[] Baselines = new SoftInterruptStatistics[SoftInterruptTable.LevelCount];

#pragma warning disable CS0169, IDE0051
    private readonly long _pad8, _pad9, _pad10, _pad11, _pad12, _pad13, _pad14, _pad15;
#pragma warning restore CS0169, IDE0051

    internal SoftCpu(Cpu cpu, int slots)
    {
        Cpu = cpu;
        Hands = new SoftHand[slots + 8];
        Levels = new SoftLevelQueue[SoftInterruptTable.LevelCount];
        for (int i = 0; i < Levels.Length; i++) Levels[i] = new SoftLevelQueue(this, (SoftLevel)i);
    }

    /// <summary>Levels with a handler ready to start: pending and not blocked.</summary>
    internal int RunnableLevels => PendingLevels & ~BlockedLevels;

    /// <summary>Appends a slot to its level's FIFO (seed: <c>SIMPLEQ_INSERT_TAIL</c> in <c>softint_schedule</c>).</summary>
    internal void Enqueue(SoftLevelQueue queue, int slot)
    {
        Hands[slot].Next = -1;
        if (queue.Tail < 0) queue.Head = slot;
        else Hands[queue.Tail].Next = slot;
        queue.Tail = slot;
        PendingLevels |= queue.Bit;
    }

    /// <summary>Takes the longest-waiting slot of a non-empty FIFO (seed: <c>SIMPLEQ_REMOVE_HEAD</c> in <c>softint_execute</c>).</summary>
    internal int Dequeue(SoftLevelQueue queue)
    {
        int slot = queue.Head;
        Debug.Assert(slot >= 0);
        int next = Hands[slot].Next;
        queue.Head = next;
        if (next < 0)
        {
            queue.Tail = -1;
            PendingLevels &= ~queue.Bit;
        }
        return slot;
    }

    /// <summary>
    /// Removes a disestablished handle from this CPU (the disposer's barrier, run here): unlinks it from its FIFO if it
    /// is pending, so that nothing on this CPU refers to the slot once the handler is no longer active either.
    /// </summary>
    internal void Unlink(SoftInterrupt handle)
    {
        ref SoftHand hand = ref Hands[handle.Slot];
        if (hand.Handle != handle) return; // never queued here, or already gone
        if ((hand.Flags & SoftHand.Pending) != 0)
        {
            SoftLevelQueue queue = Levels[(int)handle.Level];
            int previous = -1;
            for (int s = queue.Head; s >= 0; previous = s, s = Hands[s].Next)
            {
                if (s != handle.Slot) continue;
                int next = Hands[s].Next;
                if (previous < 0) queue.Head = next;
                else Hands[previous].Next = next;
                if (queue.Tail == s) queue.Tail = previous;
                if (queue.Head < 0) PendingLevels &= ~queue.Bit;
                break;
            }
            hand.Flags &= ~SoftHand.Pending;
            hand.Next = -1;
            Volatile.Write(ref Finished, Finished + 1); // accepted when it was queued: it is done with now
        }
        if ((hand.Flags & SoftHand.Active) == 0) hand.Handle = null;
    }

    /// <summary>Any thread: true while <paramref name="handle"/>'s handler runs (or is blocked) on this CPU.</summary>
    internal bool IsActive(SoftInterrupt handle) => (Volatile.Read(ref Hands[handle.Slot].Flags) & SoftHand.Active) != 0;
}
