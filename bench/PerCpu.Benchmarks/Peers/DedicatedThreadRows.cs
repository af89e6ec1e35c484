using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using System.Threading.Tasks.Sources;
using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Peers;

/// <summary>
/// The peer of <c>InvokeAsync</c> from a non-CPU thread: what a .NET developer writes today to run work on one
/// dedicated thread and get the result back. A dedicated consumer thread reads work items from a
/// <see cref="Channel{T}"/> (blocking while it is empty); each item is a pooled <see cref="IValueTaskSource"/>
/// (<see cref="ManualResetValueTaskSourceCore{TResult}"/>, continuations run asynchronously so that the consumer
/// thread never runs the caller's code) that the caller awaits, resuming on a thread-pool thread. Every call crosses to
/// the dedicated thread and back, as an InvokeAsync call crosses to CPU 1 and back.
/// <para>
/// Generous to the peer: a single-reader unbounded channel with synchronous continuations allowed, so a write wakes
/// the blocked consumer directly instead of through a thread-pool hop. The consumer blocks in <c>Task.Wait</c> (which
/// spins briefly first) on <c>WaitToReadAsync().AsTask()</c> only when the channel is empty.
/// </para>
/// </summary>
internal static class DedicatedThreadRows
{
    /// <summary>Key of the row: the InvokeAsync target's reference.</summary>
    public const string ChannelValueTaskSource = "net.thread.channel";

    public static IEnumerable<BenchRow> Rows()
    {
        yield return new BenchRow
        {
            Key = ChannelValueTaskSource, Name = "Dedicated thread + Channel + pooled IValueTaskSource, awaited", Kind = RowKind.RoundTrip, Group = RowGroup.Peer,
            CompareWith = "c.pingpong", QuickCount = 500, MaxCount = 10_000_000,
            What = "async caller: rent a pooled ManualResetValueTaskSourceCore item, channel.Writer.TryWrite(item), await it (resumes on the thread pool); " +
                   "a dedicated thread reads the channel (Task.Wait on WaitToReadAsync when empty), runs the function and SetResult",
            Run = Run,
        };
    }

    /// <summary>A pooled work item and its completion (the caller awaits it as a ValueTask).</summary>
    private sealed class WorkItem : IValueTaskSource
    {
        private static readonly ConcurrentQueue<WorkItem> s_pool = new();

        /// <summary>Written by the caller before the item is written to the channel, read by the consumer after.</summary>
        public long Value;
        public SeqCounter? Counter;
        private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };

        public static WorkItem Rent() => s_pool.TryDequeue(out WorkItem? item) ? item : new WorkItem();

        public ValueTask Task => new(this, _core.Version);

        /// <summary>On the consumer thread.</summary>
        public void Run()
        {
            Counter!.Take(Value);
            _core.SetResult(true);
        }

        public void GetResult(short token)
        {
            try
            {
                _core.GetResult(token);
            }
            finally
            {
                _core.Reset();
                s_pool.Enqueue(this);
            }
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
            => _core.OnCompleted(continuation, state, token, flags);
    }

    private static RunSample Run(long n)
    {
        var channel = Channel.CreateUnbounded<WorkItem>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = true });
        var counter = new SeqCounter();
        double seconds = 0;
        long bytes = ThreadPair.Run(
            () => seconds = CallerLoop(channel.Writer, counter, n).GetAwaiter().GetResult(),
            () => Consume(channel.Reader));
        counter.Verify(n, "dedicated thread + Channel + IValueTaskSource");
        return new RunSample(seconds, n, bytes);
    }

    private static async Task<double> CallerLoop(ChannelWriter<WorkItem> writer, SeqCounter counter, long n)
    {
        long t0 = Stopwatch.GetTimestamp();
        for (long i = 0; i < n; i++)
        {
            WorkItem item = WorkItem.Rent();
            item.Value = i;
            item.Counter = counter;
            ValueTask done = item.Task;
            writer.TryWrite(item); // unbounded: never refuses
            await done.ConfigureAwait(false);
        }
        double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        writer.Complete();
        return seconds;
    }

    /// <summary>The dedicated thread: run items until the writer completes.</summary>
    private static void Consume(ChannelReader<WorkItem> reader)
    {
        while (true)
        {
            while (reader.TryRead(out WorkItem? item)) item.Run();
            ValueTask<bool> more = reader.WaitToReadAsync();
            if (!(more.IsCompleted ? more.Result : more.AsTask().Result)) return;
        }
    }
}
