using System.Diagnostics;

namespace PerCpu.Ipi;

/// <summary>
/// A bounded multi-producer/single-consumer queue (Vyukov's bounded queue: each slot carries a sequence number, so
/// producers never block each other and the consumer never blocks producers). Producers that find it full either fail
/// or sleep in <see cref="WaitForRoom"/> until the consumer frees a slot: memory stays bounded under any flood. Used for
/// a CPU's inbox (calls from threads that are not CPUs) and for its posted tasks.
/// </summary>
[DebuggerDisplay("Queue: enqueued {EnqueuedCount}, taken {_dequeuePos.Value}")]
internal sealed class BoundedQueue<T> where T : struct
{
    private struct Slot
    {
        /// <summary>pos: free for the producer of ticket pos; pos+1: holds that producer's item.</summary>
        public long Sequence;
        public T Item;
    }

    private readonly Slot[] _slots;
    private readonly int _mask;

    /// <summary>Next ticket. Claimed by producers with CAS; read by anyone (monotonic: the number of items ever accepted).</summary>
    private PaddedLong _enqueuePos;

    /// <summary>Next ticket to take. Consumer only (read by others for diagnostics).</summary>
    private PaddedLong _dequeuePos;

    /// <summary>Producers sleeping in <see cref="WaitForRoom"/>; changed under <see cref="_gate"/> with atomics, read by the consumer.</summary>
    private int _waiters;

    private readonly object _gate = new();

    internal BoundedQueue(int capacity)
    {
        Debug.Assert(capacity >= 2 && (capacity & (capacity - 1)) == 0);
        _slots = new Slot[capacity];
        _mask = capacity - 1;
        for (int i = 0; i < capacity; i++) _slots[i].Sequence = i;
    }

    internal int Capacity => _slots.Length;

    /// <summary>Items ever accepted (any thread; acquire).</summary>
    internal long EnqueuedCount => Volatile.Read(ref _enqueuePos.Value);

    /// <summary>Items ever taken (consumer's count; racy for other threads).</summary>
    internal long DequeuedCount => Volatile.Read(ref _dequeuePos.Value);

    /// <summary>Producer (any thread): enqueues and returns the ticket (1-based sequence), or 0 when full.</summary>
    internal long TryEnqueue(in T item)
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
                    slot.Item = item;
                    // Release: the item is written before the consumer can see the slot as full.
                    Volatile.Write(ref slot.Sequence, pos + 1);
                    return pos + 1;
                }
                pos = seen;
            }
            else if (dif < 0)
            {
                return 0; // the slot still holds the item of ticket pos - capacity: full
            }
            else
            {
                pos = Volatile.Read(ref _enqueuePos.Value);
            }
        }
    }

    /// <summary>Consumer: true if the next slot holds an item.</summary>
    internal bool HasItem
    {
        get
        {
            long pos = _dequeuePos.Value;
            return Volatile.Read(ref _slots[(int)pos & _mask].Sequence) == pos + 1;
        }
    }

    /// <summary>Consumer: takes the next item if there is one. Call <see cref="NotifyRoom"/> after a batch of takes.</summary>
    internal bool TryDequeue(out T item)
    {
        long pos = _dequeuePos.Value;
        ref Slot slot = ref _slots[(int)pos & _mask];
        // Acquire: pairs with the producer's release of Sequence; the item is complete.
        if (Volatile.Read(ref slot.Sequence) != pos + 1)
        {
            item = default;
            return false;
        }
        item = slot.Item;
        slot.Item = default; // the GC must not keep what the item refers to alive
        Volatile.Write(ref _dequeuePos.Value, pos + 1);
        // Release: the slot is free for ticket pos + capacity only after it was read and cleared.
        Volatile.Write(ref slot.Sequence, pos + _slots.Length);
        return true;
    }

    /// <summary>Consumer, after it took items: wakes producers sleeping in <see cref="WaitForRoom"/>.</summary>
    internal void NotifyRoom()
    {
        // Full fence: the freed slots are visible before we look for sleeping producers (pairs with the
        // Interlocked.Increment in WaitForRoom): either we see the waiter or it sees the room.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _waiters) != 0)
            lock (_gate) Monitor.PulseAll(_gate);
    }

    /// <summary>True if a producer could enqueue now.</summary>
    internal bool HasRoom
    {
        get
        {
            long pos = Volatile.Read(ref _enqueuePos.Value);
            return Volatile.Read(ref _slots[(int)pos & _mask].Sequence) - pos >= 0;
        }
    }

    /// <summary>
    /// Producer: sleeps until the consumer frees a slot or <paramref name="deadlineTicks"/> (<see cref="Environment.TickCount64"/>)
    /// passes (returns false then; <see cref="long.MaxValue"/>: never). Spins first: the consumer usually frees room within microseconds.
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
