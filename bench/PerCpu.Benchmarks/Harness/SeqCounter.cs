using System.Runtime.InteropServices;

namespace PerCpu.Benchmarks.Harness;

/// <summary>
/// The function every throughput row calls, and its check of exactly-once, in-order delivery: message i carries i
/// as its long argument, so a lost, duplicated or reordered message shows as an error or a short count. The state
/// sits on its own cache lines (padding before and after) so it never shares a line with the ring's indices.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 256)]
public sealed class SeqCounter
{
    [FieldOffset(128)] private long _next;
    [FieldOffset(136)] private long _errors;

    /// <summary>Cached delegate: sending it allocates nothing.</summary>
    public static readonly Action<object?, long> Deliver = static (o, v) => ((SeqCounter)o!).Take(v);

    /// <summary>Messages seen so far (the value the next one must carry).</summary>
    public long Next => Volatile.Read(ref _next);

    public void Take(long v)
    {
        if (v != _next) _errors++;
        _next = v + 1;
    }

    /// <summary>Throws unless exactly messages 0..n-1 arrived, in order.</summary>
    public void Verify(long n, string what)
    {
        long next = Volatile.Read(ref _next), errors = Volatile.Read(ref _errors);
        if (next != n || errors != 0)
            throw new InvalidOperationException($"{what}: delivery check failed: last message {next - 1} of {n - 1}, {errors} out of order");
    }
}
