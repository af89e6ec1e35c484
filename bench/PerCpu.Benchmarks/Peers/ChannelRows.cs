using System.Diagnostics;
using System.Threading.Channels;
using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Peers;

/// <summary>
/// System.Threading.Channels as code uses it: SingleReader/SingleWriter, async readers whose continuations run on
/// the thread pool. Producer and consumer start on dedicated, unpinned threads.
/// </summary>
internal static class ChannelRows
{
    private const int Bound = 1024;

    public static IEnumerable<BenchRow> Rows()
    {
        yield return new BenchRow
        {
            Key = "net.channel.unbounded", Name = "Channel unbounded SR/SW, async reader", Kind = RowKind.Throughput, Group = RowGroup.Peer,
            CompareWith = "c.ring", QuickCount = 20_000, MaxCount = 100_000_000,
            What = "Channel.CreateUnbounded(SingleReader, SingleWriter); producer TryWrite; consumer await WaitToReadAsync + TryRead drain",
            Run = Unbounded,
        };
        yield return new BenchRow
        {
            Key = "net.channel.bounded", Name = "Channel bounded(1024) SR/SW, async", Kind = RowKind.Throughput, Group = RowGroup.Peer,
            CompareWith = "c.ring", QuickCount = 20_000, MaxCount = 100_000_000,
            What = "Channel.CreateBounded(1024, Wait); producer await WriteAsync; consumer await WaitToReadAsync + TryRead drain",
            Run = Bounded,
        };
        yield return new BenchRow
        {
            Key = "net.channel.pingpong", Name = "Channel ping-pong, async both ends", Kind = RowKind.RoundTrip, Group = RowGroup.Peer,
            CompareWith = "c.pingpong", QuickCount = 500, MaxCount = 10_000_000,
            What = "two unbounded SR/SW channels; both ends await WaitToReadAsync (continuations on the thread pool)",
            Run = PingPong,
        };
    }

    private static RunSample Unbounded(long n)
    {
        var channel = Channel.CreateUnbounded<Msg>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var counter = new SeqCounter();
        long t0 = 0, t1 = 0;
        long bytes = ThreadPair.Run(
            () => t0 = ProduceTry(channel.Writer, counter, n),
            () => t1 = ConsumeAsync(channel.Reader, n).GetAwaiter().GetResult());
        counter.Verify(n, "Channel unbounded");
        return new RunSample(Stopwatch.GetElapsedTime(t0, t1).TotalSeconds, n, bytes);
    }

    private static RunSample Bounded(long n)
    {
        var channel = Channel.CreateBounded<Msg>(new BoundedChannelOptions(Bound)
        {
            SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait,
        });
        var counter = new SeqCounter();
        long t0 = 0, t1 = 0;
        long bytes = ThreadPair.Run(
            () => t0 = ProduceAsync(channel.Writer, counter, n).GetAwaiter().GetResult(),
            () => t1 = ConsumeAsync(channel.Reader, n).GetAwaiter().GetResult());
        counter.Verify(n, "Channel bounded");
        return new RunSample(Stopwatch.GetElapsedTime(t0, t1).TotalSeconds, n, bytes);
    }

    private static long ProduceTry(ChannelWriter<Msg> writer, SeqCounter counter, long n)
    {
        Action<object?, long> fn = SeqCounter.Deliver;
        long t0 = Stopwatch.GetTimestamp();
        for (long i = 0; i < n; i++)
            if (!writer.TryWrite(new Msg(fn, counter, i))) throw new InvalidOperationException("unbounded channel refused a write");
        return t0;
    }

    private static async Task<long> ProduceAsync(ChannelWriter<Msg> writer, SeqCounter counter, long n)
    {
        Action<object?, long> fn = SeqCounter.Deliver;
        long t0 = Stopwatch.GetTimestamp();
        for (long i = 0; i < n; i++)
        {
            ValueTask write = writer.WriteAsync(new Msg(fn, counter, i));
            if (!write.IsCompletedSuccessfully) await write.ConfigureAwait(false);
        }
        return t0;
    }

    /// <summary>Returns the timestamp after the last message ran.</summary>
    private static async Task<long> ConsumeAsync(ChannelReader<Msg> reader, long n)
    {
        long got = 0;
        while (got < n && await reader.WaitToReadAsync().ConfigureAwait(false))
            while (got < n && reader.TryRead(out Msg m)) { m.Invoke(); got++; }
        return Stopwatch.GetTimestamp();
    }

    // ---------------------------------------------------------------- ping-pong
    private sealed class PongContext(ChannelWriter<Msg> reply, SeqCounter counter)
    {
        public readonly ChannelWriter<Msg> Reply = reply;
        public readonly SeqCounter Counter = counter;
    }

    private static readonly Action<object?, long> Pong = static (o, v) =>
    {
        var ctx = (PongContext)o!;
        ctx.Reply.TryWrite(new Msg(SeqCounter.Deliver, ctx.Counter, v));
    };

    private static RunSample PingPong(long n)
    {
        var options = new UnboundedChannelOptions { SingleReader = true, SingleWriter = true };
        var there = Channel.CreateUnbounded<Msg>(options);
        var back = Channel.CreateUnbounded<Msg>(options);
        var counter = new SeqCounter();
        var ctx = new PongContext(back.Writer, counter);
        double seconds = 0;
        long bytes = ThreadPair.Run(
            () => { seconds = PingAsync(there.Writer, back.Reader, ctx, n).GetAwaiter().GetResult(); there.Writer.Complete(); },
            () => ServeAsync(there.Reader).GetAwaiter().GetResult());
        counter.Verify(n, "Channel ping-pong");
        return new RunSample(seconds, n, bytes);
    }

    private static async Task<double> PingAsync(ChannelWriter<Msg> there, ChannelReader<Msg> back, PongContext ctx, long n)
    {
        Action<object?, long> pong = Pong;
        long t0 = Stopwatch.GetTimestamp();
        for (long i = 0; i < n; i++)
        {
            there.TryWrite(new Msg(pong, ctx, i));
            Msg reply;
            while (!back.TryRead(out reply)) await back.WaitToReadAsync().ConfigureAwait(false);
            reply.Invoke();
        }
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    private static async Task ServeAsync(ChannelReader<Msg> reader)
    {
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
            while (reader.TryRead(out Msg m)) m.Invoke();
    }
}
