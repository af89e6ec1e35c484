namespace PerCpu.Benchmarks.Peers;

/// <summary>
/// Single-producer/single-consumer ring of <see cref="Msg"/> that publishes its index per message: the C reference's
/// per-message ring, line by line, in plain C#. Slots are not cleared (as in the C ring); the benchmark's argument
/// is one long-lived object, so nothing is kept alive that would not be anyway.
/// </summary>
public sealed class SpscRing
{
    private readonly Msg[] _buf;
    private readonly long _mask;
    private RingIndices _ix;

    public SpscRing(int size)
    {
        if (size < 2 || (size & (size - 1)) != 0) throw new ArgumentException("size must be a power of two", nameof(size));
        _buf = new Msg[size];
        _mask = size - 1;
    }

    /// <summary>Writes the entry, then publishes the index with a release store, so the consumer never sees the index before the entry.</summary>
    public bool TryPush(Action<object?, long> fn, object? arg, long val)
    {
        long w = _ix.Write;                                           // own index: a plain read is current
        if (w - _ix.ReadCache == _buf.Length)
        {
            _ix.ReadCache = Volatile.Read(ref _ix.Read);              // acquire: the consumer is done with the slot
            if (w - _ix.ReadCache == _buf.Length) return false;       // full
        }
        _buf[(int)(w & _mask)] = new Msg(fn, arg, val);
        Volatile.Write(ref _ix.Write, w + 1);
        return true;
    }

    /// <summary>Calls one entry, then releases its slot; false when empty.</summary>
    public bool TryCall()
    {
        long r = _ix.Read;
        if (r == _ix.WriteCache)
        {
            _ix.WriteCache = Volatile.Read(ref _ix.Write);            // acquire: entry reads cannot move above it
            if (r == _ix.WriteCache) return false;                    // empty
        }
        ref Msg e = ref _buf[(int)(r & _mask)];
        e.Fn(e.Arg, e.Val);
        Volatile.Write(ref _ix.Read, r + 1);
        return true;
    }
}
