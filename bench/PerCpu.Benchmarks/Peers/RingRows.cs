using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Peers;

/// <summary>
/// The C reference's rings written plainly in C#, threads pinned to CPU 0 and CPU 1 like the library's: the
/// in-language limit. The rings live for the whole suite run (gen2, like the library's), so storing the young
/// argument pays the GC write barrier as it would there.
/// </summary>
internal static class RingRows
{
    private const int Size = 1024;
    private const int Batch = 64;

    private static SpscRing? s_ring, s_there, s_back;
    private static BatchedSpscRing? s_batched;

    public static IEnumerable<BenchRow> Rows()
    {
        yield return new BenchRow
        {
            Key = "cs.ring", Name = "C# ring, publish per message (pinned)", Kind = RowKind.Throughput, Group = RowGroup.CSharpRing,
            CompareWith = "c.ring", QuickCount = 20_000,
            What = "the C ring in C#: Msg[] of structs, Volatile.Read/Write, cached opposite index, padded indices; CPU0 -> CPU1",
            Run = PerMessage,
        };
        yield return new BenchRow
        {
            Key = "cs.batched", Name = "C# ring, batched + drain-and-clear (pinned)", Kind = RowKind.Throughput, Group = RowGroup.CSharpRing,
            CompareWith = "c.ring", QuickCount = 20_000,
            What = "publish every 64 entries; consumer drains all published, clears slots, publishes once; long-lived (gen2) ring",
            Run = BatchedRun,
        };
        yield return new BenchRow
        {
            Key = "cs.pingpong", Name = "C# ring ping-pong, busy poll (pinned)", Kind = RowKind.RoundTrip, Group = RowGroup.CSharpRing,
            CompareWith = "c.pingpong", QuickCount = 500, MaxCount = 20_000_000,
            What = "two C# rings; the remote function pushes the reply; both sides spin",
            Run = PingPong,
        };
    }

    /// <summary>Creates the ring once and promotes it to gen2 before its first use.</summary>
    private static T LongLived<T>(ref T? field, Func<T> create) where T : class
    {
        if (field is null)
        {
            field = create();
            GC.Collect();
            GC.Collect();
        }
        return field;
    }

    private static RunSample PerMessage(long n)
    {
        SpscRing ring = LongLived(ref s_ring, static () => new SpscRing(Size));
        var counter = new SeqCounter();
        long t0 = 0, t1 = 0;
        long bytes = ThreadPair.Run(
            () => t0 = Produce(ring, counter, n),
            () => t1 = Consume(ring, n),
            firstCpu: 0, secondCpu: 1);
        counter.Verify(n, "C# ring");
        return new RunSample(Stopwatch.GetElapsedTime(t0, t1).TotalSeconds, n, bytes);
    }

    /// <summary>Returns the start timestamp.</summary>
    private static long Produce(SpscRing ring, SeqCounter counter, long n)
    {
        Action<object?, long> fn = SeqCounter.Deliver;
        long t0 = Stopwatch.GetTimestamp();
        for (long i = 0; i < n; i++)
            while (!ring.TryPush(fn, counter, i)) X86Base.Pause();
        return t0;
    }

    /// <summary>Returns the timestamp after the last message ran.</summary>
    private static long Consume(SpscRing ring, long n)
    {
        for (long i = 0; i < n; i++)
            while (!ring.TryCall()) X86Base.Pause();
        return Stopwatch.GetTimestamp();
    }

    private static RunSample BatchedRun(long n)
    {
        BatchedSpscRing ring = LongLived(ref s_batched, static () => new BatchedSpscRing(Size, Batch));
        var counter = new SeqCounter();
        long t0 = 0, t1 = 0;
        long bytes = ThreadPair.Run(
            () => t0 = ProduceBatched(ring, counter, n),
            () => t1 = Drain(ring, n),
            firstCpu: 0, secondCpu: 1);
        counter.Verify(n, "C# batched ring");
        return new RunSample(Stopwatch.GetElapsedTime(t0, t1).TotalSeconds, n, bytes);
    }

    private static long ProduceBatched(BatchedSpscRing ring, SeqCounter counter, long n)
    {
        Action<object?, long> fn = SeqCounter.Deliver;
        long t0 = Stopwatch.GetTimestamp();
        for (long i = 0; i < n; i++)
            while (!ring.TryPush(fn, counter, i)) X86Base.Pause();
        ring.Publish();   // the tail of the last batch
        return t0;
    }

    private static long Drain(BatchedSpscRing ring, long n)
    {
        long got = 0;
        while (got < n)
        {
            long k = ring.Drain();
            if (k == 0) X86Base.Pause();
            got += k;
        }
        return Stopwatch.GetTimestamp();
    }

    /// <summary>The remote function's context: where to push the reply.</summary>
    private sealed class PongContext(SpscRing reply, SeqCounter counter)
    {
        public readonly SpscRing Reply = reply;
        public readonly SeqCounter Counter = counter;
    }

    /// <summary>Runs on CPU 1: push the reply (the pinger's counter checks it).</summary>
    private static readonly Action<object?, long> Pong = static (o, v) =>
    {
        var ctx = (PongContext)o!;
        while (!ctx.Reply.TryPush(SeqCounter.Deliver, ctx.Counter, v)) X86Base.Pause();
    };

    private static RunSample PingPong(long n)
    {
        SpscRing there = LongLived(ref s_there, static () => new SpscRing(Size));
        SpscRing back = LongLived(ref s_back, static () => new SpscRing(Size));
        var counter = new SeqCounter();
        var ctx = new PongContext(back, counter);
        var stop = new StrongBox<int>();
        double seconds = 0;
        long bytes = ThreadPair.Run(
            () => { seconds = Ping(there, back, ctx, n); Volatile.Write(ref stop.Value, 1); },
            () => Serve(there, stop),
            firstCpu: 0, secondCpu: 1);
        counter.Verify(n, "C# ring ping-pong");
        return new RunSample(seconds, n, bytes);
    }

    private static double Ping(SpscRing there, SpscRing back, PongContext ctx, long n)
    {
        Action<object?, long> pong = Pong;
        long t0 = Stopwatch.GetTimestamp();
        for (long i = 0; i < n; i++)
        {
            while (!there.TryPush(pong, ctx, i)) X86Base.Pause();
            while (!back.TryCall()) X86Base.Pause();
        }
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    private static void Serve(SpscRing there, StrongBox<int> stop)
    {
        while (Volatile.Read(ref stop.Value) == 0)
            if (!there.TryCall()) X86Base.Pause();
    }
}
