namespace PerCpu.Benchmarks.Peers;

/// <summary>
/// The same ring with the two changes that make it fast (DESIGN §2a): the producer publishes its index once per
/// batch, and the consumer takes everything published, clears each slot as it reads it (the GC must not keep
/// arguments alive) and publishes its index once. Keep instances long-lived (gen2), like the library's rings.
/// </summary>
public sealed class BatchedSpscRing
{
    private readonly Msg[] _buf;
    private readonly long _mask;
    private readonly long _batchMask;
    private RingIndices _ix;

    public BatchedSpscRing(int size, int batch)
    {
        if (size < 2 || (size & (size - 1)) != 0) throw new ArgumentException("size must be a power of two", nameof(size));
        if (batch < 1 || batch > size || (batch & (batch - 1)) != 0) throw new ArgumentException("batch must be a power of two <= size", nameof(batch));
        _buf = new Msg[size];
        _mask = size - 1;
        _batchMask = batch - 1;
    }

    public bool TryPush(Action<object?, long> fn, object? arg, long val)
    {
        long w = _ix.WriteNext;
        if (w - _ix.ReadCache == _buf.Length)
        {
            Publish();                                                // the consumer must see what it is waiting for
            _ix.ReadCache = Volatile.Read(ref _ix.Read);
            if (w - _ix.ReadCache == _buf.Length) return false;
        }
        _buf[(int)(w & _mask)] = new Msg(fn, arg, val);
        _ix.WriteNext = w + 1;
        if (((w + 1) & _batchMask) == 0) Publish();
        return true;
    }

    /// <summary>Release store: every entry written so far becomes visible before the index does.</summary>
    public void Publish() => Volatile.Write(ref _ix.Write, _ix.WriteNext);

    /// <summary>Calls every published entry, clearing each slot, then releases them all at once; returns how many.</summary>
    public long Drain()
    {
        long r = _ix.Read;
        long w = Volatile.Read(ref _ix.Write);                        // acquire: pairs with Publish
        if (r == w) return 0;
        for (long i = r; i != w; i++)
        {
            ref Msg slot = ref _buf[(int)(i & _mask)];
            Msg m = slot;
            slot = default;                                           // storing nulls needs no GC write barrier
            m.Fn(m.Arg, m.Val);
        }
        Volatile.Write(ref _ix.Read, w);
        return w - r;
    }
}
