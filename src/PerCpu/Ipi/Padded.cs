using System.Runtime.InteropServices;

namespace PerCpu.Ipi;

/// <summary>A long alone on its cache line pair (128 bytes: adjacent-line prefetch pulls lines in twos).</summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct PaddedLong
{
    [FieldOffset(64)] public long Value;
}

/// <summary>
/// The producer's private cursor of one ring, on its own line: written and read only by the source CPU thread,
/// so plain fields suffice. The consumer never touches it (and <see cref="Cpu"/> reads <see cref="WLocal"/> from other
/// threads only for diagnostics).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct ProducerCursor
{
    /// <summary>Next write position: entries below it are written, maybe not yet published.</summary>
    [FieldOffset(64)] public long WLocal;
    /// <summary>Last <see cref="ConsumerIndexes.RIndex"/> seen: lets the producer skip reading the consumer's line until the ring looks full.</summary>
    [FieldOffset(72)] public long RCache;
    /// <summary>Non-passive messages written since the last publication: they want a wake-up if the target sleeps.</summary>
    [FieldOffset(80)] public int Unwoken;
    /// <summary>The ring is in its source CPU's list of rings to flush.</summary>
    [FieldOffset(84)] public bool Listed;
    /// <summary>The source's flush epoch in which this ring was last published early (at most once per epoch).</summary>
    [FieldOffset(88)] public long EagerEpoch;
    /// <summary>
    /// Messages accepted for this ring: written into it or into its overflow (<see cref="IpiRing.AppendOverflow"/>).
    /// The sequence number of the last one, what <see cref="Cpu.WaitFor(long)"/> may wait for, and the "accepted" side of
    /// the shutdown check (read there by the disposing thread). Written by the source only, with release stores.
    /// </summary>
    [FieldOffset(96)] public long Accepted;
}

/// <summary>The consumer's private cursor of one ring: written and read only by the target CPU thread.</summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct ConsumerCursor
{
    /// <summary>Next entry to take. Nested drains (a function that drains while it waits) continue from here.</summary>
    [FieldOffset(64)] public long RLocal;
    /// <summary>Functions of this ring on the target's stack (more than one when drains nest).</summary>
    [FieldOffset(72)] public int Active;
}

/// <summary>What the consumer publishes: written by the target CPU, read by the source.</summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct ConsumerIndexes
{
    /// <summary>Entries below it are taken and their slots cleared (seed: <c>ip_rindex</c>).</summary>
    [FieldOffset(64)] public long RIndex;
    /// <summary>Entries below it have returned (seed: <c>ip_xindex</c>); <see cref="Cpu.WaitFor(long)"/> waits on it.</summary>
    [FieldOffset(72)] public long XIndex;
}
