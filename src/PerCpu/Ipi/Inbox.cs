using System.Diagnostics;

namespace PerCpu.Ipi;

/// <summary>
/// A CPU's bounded multi-producer/single-consumer queue for calls from threads that are not CPUs (thread pool,
/// <c>Main</c>, another runtime). Such threads have no incoming IPI queue to drain, so when the inbox is full they wait
/// (<see cref="WaitForRoom"/>) or fail (<see cref="Cpu.TrySend(Action{object?, long}, object?, long)"/>): memory stays
/// bounded under any flood. Slots carry a sequence number (Vyukov's bounded queue) so producers never block each other.
/// </summary>
[DebuggerDisplay("Inbox: enqueued {EnqueuedCount}, taken {_dequeuePos.Value}, done {_xindex.Value}")]
internal sealed class Inbox
{
    private struct Slot
    {
        /// <summary>pos: free for the producer of ticket pos; pos+1: holds that producer's entry.</summary>
        public long Sequence;
        public IpiEntry Entry;
    }

    private readonly Slot[] _slots;
    private readonly int _mask;

    /// <summary>Next ticket. Claimed by producers with CAS; read by anyone.</summary>
    private PaddedLong _enqueuePos;

    /// <summary>Next ticket to take. Consumer only (read by others for diagnostics).</summary>
    private PaddedLong _dequeuePos;

    /// <summary>Tickets below it have returned; released by the consumer, read by waiting producers.</summary>
    private PaddedLong _xindex;

    /// <summary>Inbox functions on the consumer's stack (consumer only).</summary>
    private int _active;

    /// <summary>Producers sleeping in <see cref="WaitForRoom"/>; changed under <see cref="_gate"/> with atomics, read by the consumer.</summary>
    private int _waiters;

    private readonly object _gate = new();

    internal Inbox(int capacity)
    {
        _slots = new Slot[capacity];
        _mask = capacity - 1;
        for (int i = 0; i < capacity; i++) _slots[i].Sequence = i;
    }

    internal int Capacity => _slots.Length;

    internal long EnqueuedCount => Volatile.Read(ref _enqueuePos.Value);

    internal long Executed => Volatile.Read(ref _xindex.Value);

    /// <summary>Producer (any thread): enqueues and returns the ticket (1-based sequence), or 0 when full.</summary>
    internal long TryEnqueue(Action<object?, long> func, object? arg1, long arg2)
    {
        long pos = Volatile.Read(ref _enqueuePos.Value);
        while (true)
        {
            ref Slot slot = ref _slots[(int)pos & _mask];
            long dif = Volatile.Read(ref slot.Sequence) - pos;
            if (dif == 0)
            {
                long seen = Interlocked.CompareExchange(ref _enqueuePos.Value, pos + 1, pos);
                if (seen == pos)
                {
                    slot.Entry.Func = func;
                    slot.Entry.Arg1 = arg1;
                    slot.Entry.Arg2 = arg2;
                    // Release: the entry is written before the consumer can see the slot as full.
                    Volatile.Write(ref slot.Sequence, pos + 1);
                    return pos + 1;
                }
                pos = seen;
            }
            else if (dif < 0)
            {
                return 0; // the slot still holds the entry of ticket pos - capacity: full
            }
            else
            {
                pos = Volatile.Read(ref _enqueuePos.Value);
            }
        }
    }

    /// <summary>Consumer: true if the next slot holds an entry.</summary>
    internal bool HasWork
    {
        get
        {
            long pos = _dequeuePos.Value;
            return Volatile.Read(ref _slots[(int)pos & _mask].Sequence) == pos + 1;
        }
    }

    /// <summary>Consumer: runs the entries present now, at most one inbox's worth. Re-entrant like <see cref="IpiRing.Drain"/>.</summary>
    internal int Drain(Cpu consumer)
    {
        int ran = 0;
        int budget = _slots.Length;
        while (ran < budget)
        {
            long pos = _dequeuePos.Value;
            ref Slot slot = ref _slots[(int)pos & _mask];
            // Acquire: pairs with the producer's release of Sequence; the entry is complete.
            if (Volatile.Read(ref slot.Sequence) != pos + 1) break;
            IpiEntry e = slot.Entry;
            slot.Entry = default;
            _dequeuePos.Value = pos + 1;
            // Release: the slot is free for ticket pos + capacity only after it was read and cleared.
            Volatile.Write(ref slot.Sequence, pos + _slots.Length);
            _active++;
            consumer.Invoke(e.Func!, e.Arg1, e.Arg2, Cpu.ExternalSource);
            if (--_active == 0)
                Volatile.Write(ref _xindex.Value, _dequeuePos.Value);
            ran++;
        }
        if (ran > 0)
        {
            // Full fence: the freed slots are visible before we look for sleeping producers (pairs with the
            // Interlocked.Increment in WaitForRoom): either we see the waiter or it sees the room.
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref _waiters) != 0)
                lock (_gate) Monitor.PulseAll(_gate);
        }
        return ran;
    }

    /// <summary>True if a producer could enqueue now.</summary>
    private bool HasRoom
    {
        get
        {
            long pos = Volatile.Read(ref _enqueuePos.Value);
            return Volatile.Read(ref _slots[(int)pos & _mask].Sequence) - pos >= 0;
        }
    }

    /// <summary>
    /// Producer: sleeps until the consumer frees a slot or the deadline passes (returns false then). Spins first:
    /// the consumer usually frees room within microseconds.
    /// </summary>
    internal bool WaitForRoom(long deadlineTicks)
    {
        var spinner = new SpinWait();
        while (!spinner.NextSpinWillYield)
        {
            if (HasRoom) return true;
            spinner.SpinOnce(sleep1Threshold: -1);
        }
        lock (_gate)
        {
            Interlocked.Increment(ref _waiters); // full fence before the room check below
            try
            {
                while (!HasRoom)
                {
                    long remaining = deadlineTicks - Environment.TickCount64;
                    if (remaining <= 0) return false;
                    Monitor.Wait(_gate, (int)Math.Min(remaining, 1000));
                }
                return true;
            }
            finally
            {
                Interlocked.Decrement(ref _waiters);
            }
        }
    }
}
