using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.Intrinsics.X86;
using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Peers;

/// <summary>ConcurrentQueue with a spinning consumer, and BlockingCollection; dedicated, unpinned threads.</summary>
internal static class QueueRows
{
    public static IEnumerable<BenchRow> Rows()
    {
        yield return new BenchRow
        {
            Key = "net.cq", Name = "ConcurrentQueue, spinning TryDequeue", Kind = RowKind.Throughput, Group = RowGroup.Peer,
            CompareWith = "c.ring", QuickCount = 20_000, MaxCount = 100_000_000,
            What = "producer Enqueue; consumer spins on TryDequeue with PAUSE (unbounded: the producer may run far ahead)",
            Run = ConcurrentQueueSpin,
        };
        yield return new BenchRow
        {
            Key = "net.bc", Name = "BlockingCollection, Add/Take", Kind = RowKind.Throughput, Group = RowGroup.Peer,
            CompareWith = "c.ring", QuickCount = 20_000, MaxCount = 50_000_000,
            What = "unbounded BlockingCollection (ConcurrentQueue underneath); consumer blocks in Take",
            Run = BlockingCollectionTake,
        };
    }

    private static RunSample ConcurrentQueueSpin(long n)
    {
        var queue = new ConcurrentQueue<Msg>();
        var counter = new SeqCounter();
        long t0 = 0, t1 = 0;
        long bytes = ThreadPair.Run(
            () =>
            {
                Action<object?, long> fn = SeqCounter.Deliver;
                t0 = Stopwatch.GetTimestamp();
                for (long i = 0; i < n; i++) queue.Enqueue(new Msg(fn, counter, i));
            },
            () => t1 = SpinDequeue(queue, n));
        counter.Verify(n, "ConcurrentQueue");
        return new RunSample(Stopwatch.GetElapsedTime(t0, t1).TotalSeconds, n, bytes);
    }

    private static long SpinDequeue(ConcurrentQueue<Msg> queue, long n)
    {
        long got = 0;
        while (got < n)
        {
            if (queue.TryDequeue(out Msg m)) { m.Invoke(); got++; }
            else X86Base.Pause();
        }
        return Stopwatch.GetTimestamp();
    }

    private static RunSample BlockingCollectionTake(long n)
    {
        using var collection = new BlockingCollection<Msg>();
        var counter = new SeqCounter();
        long t0 = 0, t1 = 0;
        long bytes = ThreadPair.Run(
            () =>
            {
                Action<object?, long> fn = SeqCounter.Deliver;
                t0 = Stopwatch.GetTimestamp();
                for (long i = 0; i < n; i++) collection.Add(new Msg(fn, counter, i));
            },
            () =>
            {
                for (long i = 0; i < n; i++) collection.Take().Invoke();
                t1 = Stopwatch.GetTimestamp();
            });
        counter.Verify(n, "BlockingCollection");
        return new RunSample(Stopwatch.GetElapsedTime(t0, t1).TotalSeconds, n, bytes);
    }
}
