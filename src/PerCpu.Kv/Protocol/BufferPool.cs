using System.Buffers;
using System.Numerics;

namespace PerCpu.Kv.Protocol;

/// <summary>The shared array pool, minus its one trap: an array it did not hand out must not go back.</summary>
internal static class BufferPool
{
    /// <summary>The largest array the shared pool keeps (its biggest bucket); larger rentals are plain allocations.</summary>
    private const int MaxPooled = 1 << 30;

    /// <summary>Rents at least <paramref name="size"/> bytes.</summary>
    public static byte[] Rent(int size) => ArrayPool<byte>.Shared.Rent(size);

    /// <summary>
    /// Returns <paramref name="array"/> if the pool could have handed it out (a power-of-two length up to 1 GB);
    /// otherwise (an exact allocation above 1 GB, or an empty array) drops it: the pool would throw.
    /// </summary>
    public static void Return(byte[] array)
    {
        if (array.Length >= 16 && array.Length <= MaxPooled && BitOperations.IsPow2(array.Length)) ArrayPool<byte>.Shared.Return(array);
    }
}
