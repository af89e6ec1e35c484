using System.Buffers;

namespace PerCpu.Tests.Net;

/// <summary>Builds a multi-segment <see cref="ReadOnlySequence{T}"/> from arrays.</summary>
internal sealed class Segments : ReadOnlySequenceSegment<byte>
{
    private Segments(ReadOnlyMemory<byte> memory, long runningIndex)
    {
        Memory = memory;
        RunningIndex = runningIndex;
    }

    public static ReadOnlySequence<byte> Of(params byte[][] arrays)
    {
        var first = new Segments(arrays[0], 0);
        Segments last = first;
        for (int i = 1; i < arrays.Length; i++)
        {
            var next = new Segments(arrays[i], last.RunningIndex + last.Memory.Length);
            last.Next = next;
            last = next;
        }
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }
}
