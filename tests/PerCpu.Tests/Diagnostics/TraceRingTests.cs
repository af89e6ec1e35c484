using PerCpu.Diagnostics;

namespace PerCpu.Tests.Diagnostics;

public sealed class TraceRingTests
{
    private static readonly Action<object?, long> s_func = static (_, _) => { };

    [Fact]
    public void Ring_KeepsTheNewestEvents_InOrder_AndCountsTheOverwrittenAsLost()
    {
        var ring = new CpuTraceRing(runtimeId: 0, cpuId: 3, capacity: 16, forward: false);
        for (int i = 0; i < 40; i++) ring.Record(TraceEvent.SendNorm, 3, i % 5, s_func, i);

        var records = new List<TraceRecord>();
        long lost = ring.Snapshot(records);

        Assert.Equal(24, lost);
        Assert.Equal(40, ring.Recorded);
        Assert.Equal(Enumerable.Range(24, 16).Select(i => (long)i), records.Select(r => r.Arg));
        Assert.All(records, r =>
        {
            Assert.Equal(3, r.Cpu);
            Assert.Equal((int)(r.Arg % 5), r.Target);
            Assert.Same(s_func, r.Func);
            Assert.Equal(TraceEvent.SendNorm, r.Event);
        });
        for (int i = 1; i < records.Count; i++) Assert.True(records[i].Timestamp >= records[i - 1].Timestamp);
    }

    [Fact]
    public void Ring_BeforeItWraps_LosesNothing()
    {
        var ring = new CpuTraceRing(0, 0, 16, forward: false);
        for (int i = 0; i < 16; i++) ring.Record(TraceEvent.Receive, 1, 0, null, i);
        var records = new List<TraceRecord>();
        Assert.Equal(0, ring.Snapshot(records));
        Assert.Equal(Enumerable.Range(0, 16).Select(i => (long)i), records.Select(r => r.Arg));
    }

    /// <summary>
    /// A forward-only ring (capacity 0, forwarding on: what the runtime installs for an EventSource listener) keeps no
    /// entries and counts none, however many events pass through it. That it forwards them is EventSourceTests' part.
    /// </summary>
    [Fact]
    public void ForwardOnlyRing_StoresNothing()
    {
        var ring = new CpuTraceRing(0, 0, 0, forward: true);
        Assert.True(ring.Forward);
        Assert.False(ring.Captures);
        Assert.Equal(0, ring.Capacity);
        for (int i = 0; i < 100; i++) ring.Record(TraceEvent.SendNorm, 0, 1, s_func, i);
        var records = new List<TraceRecord>();
        Assert.Equal(0, ring.Snapshot(records));
        Assert.Empty(records);
        Assert.Equal(0, ring.Recorded);
    }

    /// <summary>
    /// A reader snapshots the ring while its writer laps it again and again: every entry it returns must be one the
    /// writer wrote whole (each field is derived from the same index), never a mix of two, and in order.
    /// </summary>
    [Fact]
    public async Task Snapshot_WhileTheOwnerWrites_NeverReturnsATornEntry()
    {
        var ring = new CpuTraceRing(0, 0, 64, forward: false);
        var funcs = new Action<object?, long>[] { static (_, _) => { }, static (_, _) => { }, static (_, _) => { } };
        using var stop = new CancellationTokenSource();
        Task writer = Task.Factory.StartNew(() =>
        {
            for (long i = 0; !stop.IsCancellationRequested; i++)
                ring.Record((TraceEvent)(i % 11), (int)(i & 0xFFFF), (int)((i >> 16) & 0xFFFF), funcs[i % 3], i);
        }, TaskCreationOptions.LongRunning);
        using (var hang = new CancellationTokenSource(TestUtil.Hang))
        {
            while (ring.Recorded < 3 * 64) hang.Token.ThrowIfCancellationRequested(); // the writer is lapping the ring
        }

        var records = new List<TraceRecord>();
        long seen = 0;
        for (int snapshot = 0; snapshot < 2_000; snapshot++)
        {
            records.Clear();
            ring.Snapshot(records);
            long previous = -1;
            foreach (TraceRecord r in records)
            {
                long i = r.Arg;
                Assert.Equal((TraceEvent)(i % 11), r.Event);
                Assert.Equal((int)(i & 0xFFFF), r.Source);
                Assert.Equal((int)((i >> 16) & 0xFFFF), r.Target);
                Assert.Same(funcs[i % 3], r.Func);
                Assert.True(i > previous, "entries come out oldest first");
                previous = i;
                seen++;
            }
        }
        stop.Cancel();
        await writer.WithHangDetector();
        Assert.True(seen > 0);
    }
}
