using System.Runtime.InteropServices;

namespace PerCpu.Benchmarks.Peers;

/// <summary>
/// The indices of a C# ring, one 128-byte block each (two lines, so the adjacent-line prefetcher does not couple
/// them): what the producer publishes, what only the producer touches, what the consumer publishes, what only the
/// consumer touches. The first block is padding against the ring object's other fields.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 5 * 128)]
internal struct RingIndices
{
    /// <summary>Entries published (producer writes with release, consumer reads with acquire).</summary>
    [FieldOffset(1 * 128)] public long Write;

    /// <summary>Producer-only: last <see cref="Read"/> it saw (re-read only when the ring looks full).</summary>
    [FieldOffset(2 * 128)] public long ReadCache;

    /// <summary>Producer-only (batched ring): next slot to write; published to <see cref="Write"/> per batch.</summary>
    [FieldOffset(2 * 128 + 8)] public long WriteNext;

    /// <summary>Entries consumed (consumer writes with release, producer reads with acquire).</summary>
    [FieldOffset(3 * 128)] public long Read;

    /// <summary>Consumer-only: last <see cref="Write"/> it saw (re-read only when the ring looks empty).</summary>
    [FieldOffset(4 * 128)] public long WriteCache;
}
