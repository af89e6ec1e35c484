using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Native;

/// <summary>
/// The C rows: the limits every other row is compared with. Two threads pinned to CPU 0 (sender) and CPU 1
/// (receiver); nothing is allocated. When the reference could not be built, each row fails with that reason.
/// </summary>
internal static class NativeRows
{
    public const string Ring = "c.ring";
    public const string Batched = "c.batched";
    public const string PingPong = "c.pingpong";
    public const string Line = "c.line";
    public const string Futex = "c.futex";

    public static IEnumerable<BenchRow> Rows(Func<NativeReference> native)
    {
        RunSample Run(string mode, long n)
        {
            var (seconds, ops, note) = native().Run(mode, n);
            return new RunSample(seconds, ops, AllocatedBytes: 0, Note: note);
        }

        yield return new BenchRow
        {
            Key = Ring, Name = "C ring, publish per message", Kind = RowKind.Throughput, Group = RowGroup.Native,
            CompareWith = Ring, QuickCount = 20_000, MaxCount = 400_000_000,
            What = "SPSC ring 1024 x 24 B {fn, arg, long}; release-store of the write index per message; cached opposite index",
            Run = n => Run("ring", n),
        };
        yield return new BenchRow
        {
            Key = Batched, Name = "C ring, batched + drain-and-clear (limit)", Kind = RowKind.Throughput, Group = RowGroup.Native,
            CompareWith = Ring, QuickCount = 20_000, MaxCount = 1_000_000_000,
            What = "same ring; producer publishes every 64 entries; consumer drains all published entries, clears each slot, publishes once",
            Run = n => Run("batched", n),
        };
        yield return new BenchRow
        {
            Key = PingPong, Name = "C ring ping-pong, busy poll", Kind = RowKind.RoundTrip, Group = RowGroup.Native,
            CompareWith = PingPong, QuickCount = 500, MaxCount = 20_000_000,
            What = "one request through one ring, the remote function pushes the reply through a second ring; both sides spin",
            Run = n => Run("pingpong", n),
        };
        yield return new BenchRow
        {
            Key = Line, Name = "C one-cache-line ping-pong (floor)", Kind = RowKind.RoundTrip, Group = RowGroup.Native,
            CompareWith = PingPong, QuickCount = 500, MaxCount = 50_000_000,
            What = "no queue: both threads take turns writing one shared word; no cross-CPU round trip can be faster",
            Run = n => Run("line", n),
        };
        yield return new BenchRow
        {
            Key = Futex, Name = "C futex ping-pong, parked receivers", Kind = RowKind.RoundTrip, Group = RowGroup.Native,
            CompareWith = Futex, QuickCount = 100, MaxCount = 1_000_000,
            What = "each side parks in futex_wait at once (no spinning) and is woken by futex_wake: two wake-ups per round trip",
            Run = n => Run("futex", n),
        };
    }
}
