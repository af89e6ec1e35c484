namespace PerCpu.Kv.Protocol;

/// <summary>
/// The arguments of the commands of one batch: offsets and lengths into the connection's receive buffer (keys and
/// values are never copied out of it to be parsed). Owned by one connection; reused from batch to batch.
/// </summary>
internal sealed class ArgList
{
    /// <summary>Offset of each argument in the receive buffer.</summary>
    public int[] Offsets = new int[256];

    /// <summary>Length of each argument.</summary>
    public int[] Lengths = new int[256];

    /// <summary>Arguments held.</summary>
    public int Count;

    /// <summary>Appends one argument (grows rarely: steady state allocates nothing).</summary>
    public void Add(int offset, int length)
    {
        if (Count == Offsets.Length)
        {
            Array.Resize(ref Offsets, Count * 2);
            Array.Resize(ref Lengths, Count * 2);
        }
        Offsets[Count] = offset;
        Lengths[Count] = length;
        Count++;
    }

    /// <summary>Argument <paramref name="index"/> as a span of <paramref name="buffer"/>.</summary>
    public ReadOnlySpan<byte> Get(byte[] buffer, int index) => new(buffer, Offsets[index], Lengths[index]);
}
