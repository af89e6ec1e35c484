namespace PerCpu.Kv.Store;

/// <summary>A list value: a ring-buffer deque of elements (push and pop at both ends in O(1)).</summary>
internal sealed class KvList
{
    private byte[][] _items = new byte[8][];
    private int _head;

    /// <summary>Elements held.</summary>
    public int Count { get; private set; }

    /// <summary>Element <paramref name="index"/> (0 = head).</summary>
    public byte[] this[int index] => _items[(_head + index) & (_items.Length - 1)];

    /// <summary>Adds at the head (LPUSH).</summary>
    public void PushHead(byte[] item)
    {
        if (Count == _items.Length) Grow();
        _head = (_head - 1) & (_items.Length - 1);
        _items[_head] = item;
        Count++;
    }

    /// <summary>Adds at the tail (RPUSH).</summary>
    public void PushTail(byte[] item)
    {
        if (Count == _items.Length) Grow();
        _items[(_head + Count) & (_items.Length - 1)] = item;
        Count++;
    }

    /// <summary>Removes the head (LPOP); the list must not be empty.</summary>
    public byte[] PopHead()
    {
        byte[] item = _items[_head];
        _items[_head] = null!;
        _head = (_head + 1) & (_items.Length - 1);
        Count--;
        return item;
    }

    /// <summary>Removes the tail (RPOP); the list must not be empty.</summary>
    public byte[] PopTail()
    {
        int i = (_head + Count - 1) & (_items.Length - 1);
        byte[] item = _items[i];
        _items[i] = null!;
        Count--;
        return item;
    }

    private void Grow()
    {
        var bigger = new byte[_items.Length * 2][];
        for (int i = 0; i < Count; i++) bigger[i] = this[i];
        _items = bigger;
        _head = 0;
    }
}
