using System.Diagnostics;
using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Peers;

/// <summary>
/// Round trips through the stock means of "run this over there and tell me when it is done": SemaphoreSlim
/// between two dedicated threads, and a thread-pool work item that completes a TaskCompletionSource, with the
/// caller awaiting (as async code does; the InvokeAsync row's shape) or blocking in Task.Wait.
/// </summary>
internal static class WaitRows
{
    /// <summary>
    /// Key of the awaited ThreadPool + TaskCompletionSource row. For information only: its work item, completion and
    /// continuation usually run on one pool thread, so it never crosses threads; InvokeAsync's reference is
    /// <see cref="DedicatedThreadRows.ChannelValueTaskSource"/>.
    /// </summary>
    public const string ThreadPoolTcs = "net.tp.tcs";

    public static IEnumerable<BenchRow> Rows()
    {
        yield return new BenchRow
        {
            Key = "net.semaphore", Name = "SemaphoreSlim ping-pong", Kind = RowKind.RoundTrip, Group = RowGroup.Peer,
            CompareWith = "c.pingpong", QuickCount = 500, MaxCount = 10_000_000,
            What = "two dedicated threads; Release / Wait (Wait spins briefly, then parks)",
            Run = Semaphore,
        };
        yield return new BenchRow
        {
            Key = ThreadPoolTcs, Name = "ThreadPool item + TCS, awaited (for information: stays on one thread)", Kind = RowKind.RoundTrip, Group = RowGroup.Peer,
            CompareWith = "c.pingpong", QuickCount = 500, MaxCount = 10_000_000,
            What = "async caller: new TaskCompletionSource, UnsafeQueueUserWorkItem(item, preferLocal: false), await tcs.Task; the item runs the function and SetResult",
            Run = ThreadPoolAwaited,
        };
        yield return new BenchRow
        {
            Key = "net.tp.tcs.wait", Name = "ThreadPool item + TCS, Task.Wait", Kind = RowKind.RoundTrip, Group = RowGroup.Peer,
            CompareWith = "c.pingpong", QuickCount = 500, MaxCount = 10_000_000,
            What = "as above, but a dedicated caller blocks in Task.Wait()",
            Run = ThreadPoolBlocking,
        };
    }

    // ---------------------------------------------------------------- SemaphoreSlim
    private sealed class Slots
    {
        public long Request;
        public readonly SemaphoreSlim ToPonger = new(0), ToPinger = new(0);
    }

    private static RunSample Semaphore(long n)
    {
        var slots = new Slots();
        var counter = new SeqCounter();
        double seconds = 0;
        long bytes = ThreadPair.Run(
            () =>
            {
                long t0 = Stopwatch.GetTimestamp();
                for (long i = 0; i < n; i++)
                {
                    slots.Request = i;
                    slots.ToPonger.Release();   // Release/Wait are full fences: Request is visible to the ponger
                    slots.ToPinger.Wait();
                }
                seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            },
            () =>
            {
                for (long i = 0; i < n; i++)
                {
                    slots.ToPonger.Wait();
                    counter.Take(slots.Request);
                    slots.ToPinger.Release();
                }
            });
        counter.Verify(n, "SemaphoreSlim ping-pong");
        return new RunSample(seconds, n, bytes);
    }

    // ---------------------------------------------------------------- ThreadPool + TaskCompletionSource
    private sealed class TcsItem(SeqCounter counter) : IThreadPoolWorkItem
    {
        public long Value;
        public TaskCompletionSource? Tcs;
        public int ExecutedOn;

        public void Execute()
        {
            ExecutedOn = Environment.CurrentManagedThreadId;
            counter.Take(Value);
            Tcs!.SetResult();
        }
    }

    private static RunSample ThreadPoolAwaited(long n)
    {
        var counter = new SeqCounter();
        var item = new TcsItem(counter);
        (double Seconds, long Hops) r = default;
        long bytes = ThreadPair.RunOne(() => r = AwaitLoop(item, n).GetAwaiter().GetResult());
        counter.Verify(n, "ThreadPool + TCS");
        return new RunSample(r.Seconds, n, bytes, Note: $"{100.0 * r.Hops / n:0.#}% of calls ran on another thread than their caller");
    }

    private static async Task<(double, long)> AwaitLoop(TcsItem item, long n)
    {
        long crossThread = 0;
        long t0 = Stopwatch.GetTimestamp();
        for (long i = 0; i < n; i++)
        {
            var tcs = new TaskCompletionSource();
            item.Tcs = tcs;
            item.Value = i;
            int me = Environment.CurrentManagedThreadId;
            ThreadPool.UnsafeQueueUserWorkItem(item, preferLocal: false);
            await tcs.Task.ConfigureAwait(false);
            if (item.ExecutedOn != me) crossThread++;
        }
        return (Stopwatch.GetElapsedTime(t0).TotalSeconds, crossThread);
    }

    private static RunSample ThreadPoolBlocking(long n)
    {
        var counter = new SeqCounter();
        var item = new TcsItem(counter);
        double seconds = 0;
        long bytes = ThreadPair.RunOne(() =>
        {
            long t0 = Stopwatch.GetTimestamp();
            for (long i = 0; i < n; i++)
            {
                var tcs = new TaskCompletionSource();
                item.Tcs = tcs;
                item.Value = i;
                ThreadPool.UnsafeQueueUserWorkItem(item, preferLocal: false);
                tcs.Task.Wait();
            }
            seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        });
        counter.Verify(n, "ThreadPool + TCS, Task.Wait");
        return new RunSample(seconds, n, bytes);
    }
}
