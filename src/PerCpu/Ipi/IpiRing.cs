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

    /// <summary>Producer: writes one entry. The caller has checked for room; the entry is not visible until <see cref="Publish"/>.</summary>
    internal long Write(Action<object?, long> func, object? arg1, long arg2)
    {
        long w = P.WLocal;
        ref IpiEntry slot = ref Slots[(int)w & Mask];
        slot.Func = func;
        slot.Arg1 = arg1;
        slot.Arg2 = arg2;
        P.WLocal = w + 1;
        return w + 1;
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

    /// <summary>The consumer publishes its read and done indexes at least every this many entries (and at the end of each drain).</summary>
    internal const int ConsumerPublishBatch = 32;

    /// <summary>
    /// Consumer: runs every published entry (seed: <c>lwkt_process_ipiq_core</c>). Re-entrant: a function may drain
    /// this ring again (through a send that waits); the nested drain continues from <see cref="ConsumerCursor.RLocal"/>
    /// and the outer loop picks up after it. Returns the number of entries run at this level.
    /// <para>
    /// The seed stores <c>ip_rindex</c> and <c>ip_xindex</c> per message; here they are stored every
    /// <see cref="ConsumerPublishBatch"/> entries and when the drain ends, so that a stream does not bounce the
    /// indexes' line to a producer that looks at it while the ring is nearly full.
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
                break;
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
        Volatile.Write(ref X.RIndex, C.RLocal);
        if (C.Active == 0) Volatile.Write(ref X.XIndex, C.RLocal);
        return ran;
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
            bool publish = (ri & (ConsumerPublishBatch - 1)) == 0;
            // Release: the slots below ri were read and cleared before the producer may reuse them.
            if (publish) Volatile.Write(ref X.RIndex, ri);
            C.Active++;
            trace?.Record(Diagnostics.TraceEvent.Receive, Source, Target, func, arg2);
            consumer.Own.Running = func; // stall watchdog
            func(arg1, arg2);
            counters.Received++; // before XIndex: a WaitFor that returns sees its message counted
            // XIndex only moves when no older entry of this ring is still on the stack (a nested drain may finish
            // younger entries first): WaitFor must never return before its function has returned.
            if (--C.Active == 0 && publish)
                Volatile.Write(ref X.XIndex, C.RLocal);
            ran++;
        }
    }
}
