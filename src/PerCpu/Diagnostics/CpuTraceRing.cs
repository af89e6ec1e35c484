using System.Diagnostics;

namespace PerCpu.Diagnostics;

/// <summary>
/// One CPU's trace ring, like the seed's KTR buffer: fixed size (a power of two), lock-free, written only by the owning
/// CPU thread, oldest entries overwritten when it wraps. <see cref="Cpu.Trace"/> is null while tracing is off, so that
/// every trace point (<c>Trace?.Record(...)</c>) costs one predictable branch. The runtime installs and removes rings
/// with a release store from any thread; events recorded around the switch may be missing (the owner may still be
/// inside <see cref="Record"/> on the old ring, or not yet see the new one).
/// <para>
/// Readers (<see cref="Snapshot"/>) may run on another thread while the owner keeps writing: each entry carries its
/// own sequence (a seqlock per entry), so an entry overwritten or half written while it is read is dropped and
/// counted as lost, never returned torn.
/// </para>
/// The ring can also forward every event to <see cref="PerCpuEventSource"/> (when a listener enabled its trace-point
/// keyword); a forward-only ring has no storage.
/// </summary>
[DebuggerDisplay("Trace ring of CPU {CpuId}: {Recorded} recorded, capacity {Capacity}")]
internal sealed class CpuTraceRing
{
    /// <summary>One trace entry. Every field is written by the owner only; readers validate it with <see cref="Seq"/>.</summary>
    private struct Entry
    {
        /// <summary>Index + 1 of the event the fields hold; 0 while they are being rewritten.</summary>
        public long Seq;
        /// <summary><see cref="Stopwatch.GetTimestamp"/> when the event was recorded.</summary>
        public long Timestamp;
        /// <summary>The function (resolved to a name only at export, so recording stays cheap).</summary>
        public Delegate? Func;
        /// <summary>The message's <c>arg2</c>, or what the trace point documents (wakes: messages the wake served).</summary>
        public long Arg;
        /// <summary>Source CPU (-1: a thread that is not a CPU).</summary>
        public int Source;
        /// <summary>Target CPU.</summary>
        public int Target;
        /// <summary>A <see cref="TraceEvent"/>.</summary>
        public byte Event;
    }

    private readonly Entry[] _entries;
    private readonly int _mask;

    /// <summary>Events recorded so far (the next entry's index). Owner writes with release; readers acquire.</summary>
    private long _next;

    /// <summary>Forward each event to the EventSource. Written by the runtime (any thread), read by the owner per event.</summary>
    private volatile bool _forward;

    /// <summary>Names of forwarded functions, so that the EventSource path resolves each delegate once (owner only).</summary>
    private Dictionary<Delegate, string>? _forwardNames;

    /// <summary>The CPU that owns (writes) this ring.</summary>
    internal readonly int CpuId;

    /// <summary><see cref="CpuRuntime"/>'s diagnostics id, carried in forwarded events.</summary>
    internal readonly int RuntimeId;

    /// <param name="runtimeId">The runtime's diagnostics id.</param>
    /// <param name="cpuId">The owning CPU.</param>
    /// <param name="capacity">0 (forward only) or a power of two.</param>
    /// <param name="forward">Forward events to the EventSource from the start.</param>
    internal CpuTraceRing(int runtimeId, int cpuId, int capacity, bool forward)
    {
        Debug.Assert(capacity == 0 || (capacity & (capacity - 1)) == 0);
        RuntimeId = runtimeId;
        CpuId = cpuId;
        _entries = capacity == 0 ? [] : new Entry[capacity];
        _mask = capacity - 1;
        _forward = forward;
    }

    /// <summary>Entries the ring keeps (0: forward only).</summary>
    internal int Capacity => _entries.Length;

    /// <summary>True if the ring stores events (rather than only forwarding them).</summary>
    internal bool Captures => _entries.Length != 0;

    /// <summary>Events recorded so far, kept or overwritten.</summary>
    internal long Recorded => Volatile.Read(ref _next);

    /// <summary>Turns forwarding to the EventSource on or off (any thread; the owner sees it at its next event).</summary>
    internal bool Forward
    {
        get => _forward;
        set => _forward = value;
    }

    /// <summary>Records one event (seed: <c>KTR_LOG</c>). Owner thread only; never allocates when only capturing.</summary>
    public void Record(TraceEvent ev, int source, int target, Delegate? func, long arg)
    {
        Entry[] entries = _entries;
        if (entries.Length != 0)
        {
            long i = _next;
            ref Entry e = ref entries[(int)i & _mask];
            // The per-entry seqlock: mark the slot as being rewritten, then write each field with a release store so
            // that a reader who sees any new field value also sees the mark (a plain store could become visible
            // before it on a weak memory model), then publish the new sequence last. On x64 these are plain stores.
            e.Seq = 0;
            Volatile.Write(ref e.Timestamp, Stopwatch.GetTimestamp());
            Volatile.Write(ref e.Func, func);
            Volatile.Write(ref e.Arg, arg);
            Volatile.Write(ref e.Source, source);
            Volatile.Write(ref e.Target, target);
            Volatile.Write(ref e.Event, (byte)ev);
            Volatile.Write(ref e.Seq, i + 1);
            // Release: the entry is complete before a reader that sees the new count looks at it.
            Volatile.Write(ref _next, i + 1);
        }
        if (_forward) ForwardToEventSource(ev, source, target, func, arg);
    }

    private void ForwardToEventSource(TraceEvent ev, int source, int target, Delegate? func, long arg)
    {
        PerCpuEventSource log = PerCpuEventSource.Log;
        if (!log.IsEnabled()) return;
        string name = "";
        if (func != null)
        {
            Dictionary<Delegate, string> names = _forwardNames ??= new Dictionary<Delegate, string>(ReferenceEqualityComparer.Instance);
            if (!names.TryGetValue(func, out name!))
            {
                name = TraceNames.Describe(func);
                if (names.Count < 4096) names[func] = name; // bounded: closures are new delegates every time
            }
        }
        log.TracePoint(RuntimeId, CpuId, TraceNames.Point(ev), source, target, name, arg);
    }

    /// <summary>
    /// Copies the events still in the ring, oldest first, into <paramref name="into"/> (any thread, while the owner may
    /// keep writing). Returns how many recorded events are not there: overwritten by the wrap, or rewritten while this
    /// read them.
    /// </summary>
    internal long Snapshot(List<TraceRecord> into)
    {
        Entry[] entries = _entries;
        // Acquire: every entry below n was complete when n was published.
        long n = Volatile.Read(ref _next);
        long first = Math.Max(0, n - entries.Length);
        long lost = first;
        for (long i = first; i < n; i++)
        {
            ref Entry e = ref entries[(int)i & _mask];
            // Acquire: the field reads below are not hoisted above this check.
            if (Volatile.Read(ref e.Seq) != i + 1)
            {
                lost++;
                continue;
            }
            var record = new TraceRecord(
                Volatile.Read(ref e.Timestamp), (TraceEvent)Volatile.Read(ref e.Event), CpuId,
                Volatile.Read(ref e.Source), Volatile.Read(ref e.Target), Volatile.Read(ref e.Func), Volatile.Read(ref e.Arg));
            // Full fence: the field reads complete before the re-check; if the owner began rewriting the slot, the
            // re-check sees its mark (0) or the next sequence, and the torn copy is dropped.
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref e.Seq) != i + 1)
            {
                lost++;
                continue;
            }
            into.Add(record);
        }
        return lost;
    }
}

/// <summary>One event read out of a <see cref="CpuTraceRing"/>, before names are resolved.</summary>
internal readonly record struct TraceRecord(long Timestamp, TraceEvent Event, int Cpu, int Source, int Target, Delegate? Func, long Arg);
