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
    /// The shard of <paramref name="key"/> among <paramref name="shards"/>. Deterministic across processes (unlike the
    /// table hash), because each shard's append-only file holds that shard's keys and is replayed into the same shard.
    /// A different function of the key than the table hash, so that the keys of one shard still use all its buckets.
    /// </summary>
    public static int ShardOf(ReadOnlySpan<byte> key, int shards)
    {
        if (shards == 1) return 0;
        return (int)(RouteHash(key) % (ulong)shards);
    }

    /// <summary>A fixed 64-bit hash (8 bytes per step, splitmix64's finaliser): stable for the files, cheap for short keys.</summary>
    internal static ulong RouteHash(ReadOnlySpan<byte> key)
    {
        ulong h = 0x9E3779B97F4A7C15UL ^ (ulong)key.Length;
        while (key.Length >= 8)
        {
            h = ulong.RotateLeft(h ^ (System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(key) * 0xBF58476D1CE4E5B9UL), 31) * 0x94D049BB133111EBUL;
            key = key.Slice(8);
        }
        ulong tail = 0;
        for (int i = 0; i < key.Length; i++) tail |= (ulong)key[i] << (8 * i);
        h ^= tail * 0xBF58476D1CE4E5B9UL;
        h ^= h >> 30;
        h *= 0xBF58476D1CE4E5B9UL;
        h ^= h >> 27;
        h *= 0x94D049BB133111EBUL;
        h ^= h >> 31;
        return h;
    }
}
