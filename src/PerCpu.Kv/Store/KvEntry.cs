namespace PerCpu.Kv.Store;

/// <summary>One key's value and expiry. Owned by its shard's CPU; never seen by another thread.</summary>
internal sealed class KvEntry(byte[] key, object value)
{
    /// <summary>The key (the dictionary's key, kept here for deletion by sampling).</summary>
    public readonly byte[] Key = key;

    /// <summary>A string (<c>byte[]</c>, exactly its length) or a list (<see cref="KvList"/>).</summary>
    public object Value = value;

    /// <summary>Unix time in milliseconds at which the key expires; 0 = never.</summary>
    public long ExpireAt;

    /// <summary>Index in the shard's table of keys with an expiry (for sampling), or -1.</summary>
    public int VolatileIndex = -1;
}
