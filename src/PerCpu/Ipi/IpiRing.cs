using System.Diagnostics;

namespace PerCpu.Ipi;

/// <summary>
/// One single-producer/single-consumer IPI queue: the seed's <c>gd_ipiq[target]</c> of the source CPU. Exactly one
/// source thread writes entries and exactly one target thread runs them, in order.
/// <para>
/// Speed comes from batching on both sides (DESIGN §2a): the producer writes entries into slots and publishes its
/// write index once per batch (<see cref="Cpu"/> flushes at the end of each dispatch pass, when the target is idle, or
/// every <see cref="FlushBatch"/> messages); the consumer reads the write index once, runs every entry below it and
/// clears each slot so the GC does not keep dead arguments alive.
/// </para>
/// </summary>
[DebuggerDisplay("IPI ring {Source}->{Target}: written {P.WLocal}, published {W.Value}, taken {X.RIndex}, done {X.XIndex}")]
internal sealed class IpiRing
{
    /// <summary>Messages a producer writes before it publishes them even while the target is busy.</summary>
    internal const int FlushBatch = 64;

    internal readonly IpiEntry[] Slots;
    internal readonly int Mask;
    internal readonly int Capacity;
    internal readonly int Source;
    internal readonly int Target;

    /// <summary>Producer-private cursor (source thread only).</summary>
    internal ProducerCursor P;

    /// <summary>Published write index (seed: <c>ip_windex</c>). Released by the source after the slots it covers are written; acquired by the target.</summary>
    internal PaddedLong W;

    /// <summary>Consumer-private cursor (target thread only).</summary>
    internal ConsumerCursor C;

    /// <summary>Read and done indexes, released by the target, read by the source.</summary>
    internal ConsumerIndexes X;

    internal IpiRing(int source, int target, int capacity)
    {
        Debug.Assert(capacity >= 16 && (capacity & (capacity - 1)) == 0);
        Source = source;
        Target = target;
        Capacity = capacity;
        Mask = capacity - 1;
        Slots = new IpiEntry[capacity];
    }

    /// <summary>Entries written (published or not) that the consumer has not yet taken, as the producer last saw it.</summary>
    internal long UsedByProducerView => P.WLocal - P.RCache;

    /// <summary>Producer: refreshes the cached read index from the consumer's line (acquire: pairs with its release).</summary>
    internal long RefreshReadIndex() => P.RCache = Volatile.Read(ref X.RIndex);

    /// <summary>
    /// Producer: writes one entry. The caller has checked for room and that the overflow is empty; the entry is not
    /// visible until <see cref="Publish"/>. Returns its sequence number.
    /// </summary>
    internal long Write(Action<object?, long> func, object? arg1, long arg2)
    {
        long w = P.WLocal;
        ref IpiEntry slot = ref Slots[(int)w & Mask];
        slot.Func = func;
        slot.Arg1 = arg1;
        slot.Arg2 = arg2;
        P.WLocal = w + 1;
        // Release (plain on x64): counted as accepted before the consumer can run it and release XIndex past it,
        // so the shutdown check never sees "finished" ahead of "accepted" (CpuRuntime.IsQuiescent).
        Volatile.Write(ref P.Accepted, P.Accepted + 1);
        return w + 1;
    }

    // ---- overflow (issue 11 A): messages a CPU sends while it waits, when this ring has no room ----

    /// <summary>
    /// Messages accepted for this ring that did not fit, oldest first; they move into the ring, in order, as room
    /// appears (<see cref="MoveOverflow"/>). Source thread only. A circular buffer that grows by doubling and is kept
    /// once allocated; null until the first overflow.
    /// </summary>
    private IpiEntry[]? _overflow;
    private int _overflowHead;

    /// <summary>Messages in the overflow (source thread only).</summary>
    internal int OverflowCount;

    /// <summary>Producer: accepts a message behind the overflow (the ring is full, or older messages already wait there). Returns its sequence number.</summary>
    internal long AppendOverflow(Action<object?, long> func, object? arg1, long arg2)
    {
        IpiEntry[]? buffer = _overflow;
        if (buffer == null || OverflowCount == buffer.Length) buffer = GrowOverflow();
        ref IpiEntry slot = ref buffer[(_overflowHead + OverflowCount) & (buffer.Length - 1)];
        slot.Func = func;
        slot.Arg1 = arg1;
        slot.Arg2 = arg2;
        OverflowCount++;
        // Release, as in Write: counted before it can possibly run.
        Volatile.Write(ref P.Accepted, P.Accepted + 1);
        return P.Accepted;
    }

    private IpiEntry[] GrowOverflow()
    {
        IpiEntry[]? old = _overflow;
        var bigger = new IpiEntry[old == null ? 16 : old.Length * 2];
        for (int i = 0; i < OverflowCount; i++) bigger[i] = old![(_overflowHead + i) & (old.Length - 1)];
        _overflow = bigger;
        _overflowHead = 0;
        return bigger;
    }

    /// <summary>
    /// Producer: moves overflowed messages into the ring while it has room (up to its full capacity: the
    /// half-full rule exists to leave room for sends made while waiting, and these are such sends). Returns true if
    /// the overflow is now empty. Entries keep their order and their sequence numbers: the overflow only ever holds
    /// the messages right after the ring's last written one.
    /// </summary>
    internal bool MoveOverflow(out int moved)
    {
        moved = 0;
        IpiEntry[] buffer = _overflow!;
        long free = Capacity - (P.WLocal - P.RCache);
        if (free < OverflowCount) free = Capacity - (P.WLocal - RefreshReadIndex());
        int mask = buffer.Length - 1;
        while (OverflowCount > 0 && free > 0)
        {
            ref IpiEntry from = ref buffer[_overflowHead];
            long w = P.WLocal;
            Slots[(int)w & Mask] = from;
            from = default; // the GC must not keep the argument alive through the spare buffer
            P.WLocal = w + 1;
            _overflowHead = (_overflowHead + 1) & mask;
            OverflowCount--;
            free--;
            moved++;
        }
        return OverflowCount == 0;
    }

    /// <summary>Producer: makes every written entry visible to the consumer. Returns false if there was nothing new.</summary>
    internal bool Publish()
    {
        long w = P.WLocal;
        if (w == W.Value) return false; // only this thread writes W: a plain read is its own last store
        // Release: the slot stores above happen-before the consumer's acquire of W (seed: cpu_sfence; ++ip_windex).
        Volatile.Write(ref W.Value, w);
        return true;
    }

    /// <summary>Consumer: true if the producer has published entries not yet taken.</summary>
    internal bool HasPublishedWork => Volatile.Read(ref W.Value) != C.RLocal;

    /// <summary>
    /// Consumer: runs every published entry (seed: <c>lwkt_process_ipiq_core</c>). Re-entrant: a function may drain
    /// this ring again (through a wait); the nested drain continues from <see cref="ConsumerCursor.RLocal"/> and the
    /// outer loop picks up after it. Returns the number of entries run at this level.
    /// <para>
    /// As in the seed, the read index is published before each function is called (<c>ip_rindex</c>), so that a
    /// function that blocks or waits has already given its slot back: the producer's room never depends on what the
    /// consumer happens to be doing (issue 11 B: publishing in batches left producers of a CPU stuck inside a
    /// function without room, and cycles of such CPUs stalled). The store hits a line the consumer owns unless the
    /// producer has just read it, which it does only when its own view of the ring is more than half full. The done
    /// index (<c>ip_xindex</c>) is published after each function that is the ring's outermost one on the stack.
    /// </para>
    /// <para>
    /// The exception handler is outside the per-message loop (<see cref="RunEntries"/> has none, so a function call
    /// there is a plain call): a function that throws ends that loop, is counted and reported, its bookkeeping is
    /// finished here as if it had returned, and the loop starts again with the next entry.
    /// </para>
    /// </summary>
    internal int Drain(Cpu consumer)
    {
        // Acquire: every slot below wi is fully written (pairs with the release in Publish).
        long wi = Volatile.Read(ref W.Value);
        if (wi == C.RLocal) return 0;
        int ran = 0;
        while (true)
        {
            try
            {
                RunEntries(consumer, wi, ref ran);
                return ran;
            }
            catch (Exception e)
            {
                // The entry at RLocal - 1 (or, if it nested a drain, an older one of this level) threw; RunEntries had
                // counted it as started. Finish it as RunEntries would have, then go on.
                ran++;
                consumer.Counters.Received++;
                if (--C.Active == 0) Volatile.Write(ref X.XIndex, C.RLocal);
                consumer.ReportException(e, Source);
            }
        }
    }

    /// <summary>The per-message loop of <see cref="Drain"/>: no exception handler, so nothing here costs a frame per message.</summary>
    private void RunEntries(Cpu consumer, long wi, ref int ran)
    {
        IpiEntry[] slots = Slots;
        int mask = Mask;
        Diagnostics.CpuCounters counters = consumer.Counters;
        Diagnostics.CpuTraceRing? trace = consumer.Trace; // read once per drain: tracing that starts meanwhile begins with the next
        long ri;
        while (wi - (ri = C.RLocal) > 0)
        {
            ref IpiEntry slot = ref slots[(int)ri & mask];
            Action<object?, long> func = slot.Func!;
            object? arg1 = slot.Arg1;
            long arg2 = slot.Arg2;
            slot = default; // the GC must not keep dead arguments alive
            C.RLocal = ++ri;
            // Release: the slot was read and cleared before the producer may reuse it (seed: ++ip_rindex before the call).
            Volatile.Write(ref X.RIndex, ri);
            C.Active++;
            trace?.Record(Diagnostics.TraceEvent.Receive, Source, Target, func, arg2);
            consumer.Own.Running = func; // stall watchdog
            func(arg1, arg2);
            counters.Received++; // before XIndex: a WaitFor that returns sees its message counted
            // XIndex only moves when no older entry of this ring is still on the stack (a nested drain may finish
            // younger entries first): WaitFor must never return before its function has returned. Release: what the
            // function did (and counted as accepted) is visible to whoever sees it done.
            if (--C.Active == 0) Volatile.Write(ref X.XIndex, C.RLocal);
            ran++;
        }
    }
}
