namespace PerCpu.Kv.Store;

/// <summary>
/// Compares keys by content. The alternate (span) form lets a shard look a key up straight from the receive buffer,
/// so that reading or overwriting an existing key allocates nothing; only a new key is copied into an array.
/// </summary>
internal sealed class ByteKeyComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
{
    /// <summary>The one instance.</summary>
    public static readonly ByteKeyComparer Instance = new();

    /// <inheritdoc/>
    public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

    /// <inheritdoc/>
    public int GetHashCode(byte[] obj) => Hash(obj);

    /// <inheritdoc/>
    public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

    /// <inheritdoc/>
    public int GetHashCode(ReadOnlySpan<byte> alternate) => Hash(alternate);

    /// <inheritdoc/>
    public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();

    /// <summary>Randomised per process (HashCode's seed), so that crafted keys cannot degrade a shard's table.</summary>
    private static int Hash(ReadOnlySpan<byte> key)
    {
        var h = new HashCode();
        h.AddBytes(key);
        return h.ToHashCode();
    }

    /// <summary>
    /// The shard of <paramref name="key"/> among <paramref name="shards"/>: a different function of the key than the
    /// table hash (a salt first), so that the keys of one shard still spread over all of its buckets.
    /// </summary>
    public static int ShardOf(ReadOnlySpan<byte> key, int shards)
    {
        if (shards == 1) return 0;
        var h = new HashCode();
        h.Add(0x5bd1e995);
        h.AddBytes(key);
        return (int)((uint)h.ToHashCode() % (uint)shards);
    }
}
