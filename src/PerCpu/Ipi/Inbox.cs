using System.Diagnostics;

namespace PerCpu.Ipi;

/// <summary>
/// A CPU's bounded queue for calls from threads that are not CPUs (thread pool, <c>Main</c>, another runtime). Such
/// threads have no incoming IPI queue to drain, so when the inbox is full they wait (<see cref="WaitForRoom"/>) or fail
/// (<see cref="Cpu.TrySend(Action{object?, long}, object?, long)"/>): memory stays bounded under any flood.
/// </summary>
[DebuggerDisplay("Inbox: enqueued {EnqueuedCount}, done {_xindex.Value}")]
internal sealed class Inbox
{
    private readonly BoundedQueue<IpiEntry> _queue;

    /// <summary>Tickets below it have returned; released by the consumer, read by waiting producers and the shutdown check.</summary>
    private PaddedLong _xindex;

    /// <summary>Inbox functions on the consumer's stack (consumer only).</summary>
    private int _active;

    internal Inbox(int capacity) => _queue = new BoundedQueue<IpiEntry>(capacity);

    internal long EnqueuedCount => _queue.EnqueuedCount;

    internal long Executed => Volatile.Read(ref _xindex.Value);

    /// <summary>Producer (any thread): enqueues and returns the ticket (1-based sequence), or 0 when full.</summary>
    internal long TryEnqueue(Action<object?, long> func, object? arg1, long arg2)
        => _queue.TryEnqueue(new IpiEntry { Func = func, Arg1 = arg1, Arg2 = arg2 });

    /// <summary>Consumer: true if the next slot holds an entry.</summary>
    internal bool HasWork => _queue.HasItem;

    /// <summary>Consumer: runs the entries present now, at most one inbox's worth. Re-entrant like <see cref="IpiRing.Drain"/>.</summary>
    internal int Drain(Cpu consumer)
    {
        int ran = 0;
        int budget = _queue.Capacity;
        while (ran < budget && _queue.TryDequeue(out IpiEntry e))
        {
            _active++;
            consumer.Invoke(e.Func!, e.Arg1, e.Arg2, Cpu.ExternalSource);
            // Release: the function's effects (and what it counted as accepted) are visible to whoever sees it done.
            if (--_active == 0) Volatile.Write(ref _xindex.Value, _queue.DequeuedCount);
            ran++;
        }
        if (ran > 0) _queue.NotifyRoom();
        return ran;
    }

    /// <summary>Producer: sleeps until the consumer frees a slot or the deadline passes (returns false then).</summary>
    internal bool WaitForRoom(long deadlineTicks) => _queue.WaitForRoom(deadlineTicks);
}
