using System.Diagnostics;

namespace PerCpu.Io;

/// <summary>
/// A registration in a <see cref="Reactor"/>: a slot index and the slot's generation, packed exactly as they travel in
/// epoll's <c>data</c> field. The generation changes when the registration ends, so a stale token (or a stale event
/// already fetched from the kernel) no longer matches the slot even after the slot is reused. <c>default</c> is invalid.
/// </summary>
[DebuggerDisplay("slot {Slot}, generation {Generation}")]
internal readonly struct ReactorRegistration : IEquatable<ReactorRegistration>
{
    /// <summary>(generation &lt;&lt; 32) | slot; generations start at 1, so 0 never names a registration.</summary>
    internal readonly ulong Key;

    internal ReactorRegistration(int slot, uint generation) => Key = ((ulong)generation << 32) | (uint)slot;

    internal ReactorRegistration(ulong key) => Key = key;

    internal int Slot => (int)(uint)Key;

    internal uint Generation => (uint)(Key >> 32);

    /// <summary>False for <c>default</c>.</summary>
    public bool IsValid => Key != 0;

    public bool Equals(ReactorRegistration other) => Key == other.Key;

    public override bool Equals(object? obj) => obj is ReactorRegistration r && r.Key == Key;

    public override int GetHashCode() => Key.GetHashCode();

    public static bool operator ==(ReactorRegistration a, ReactorRegistration b) => a.Key == b.Key;

    public static bool operator !=(ReactorRegistration a, ReactorRegistration b) => a.Key != b.Key;
}
