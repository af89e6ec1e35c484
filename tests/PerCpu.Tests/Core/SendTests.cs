namespace PerCpu.Tests.Core;

public sealed class SendTests
{
    private sealed class Box
    {
        public long Value;
        public int Cpu = -1;
    }

    [Fact]
    public async Task Send_RunsFunctionOnTargetCpu_WithBothArguments()
    {
        await using var runtime = TestUtil.Start(2);
        var box = new Box();
        using var done = new ManualResetEventSlim();
        runtime[1].Send(static (o, a) =>
        {
            var b = (Box)((object[])o!)[0];
            b.Value = a;
            b.Cpu = Cpu.Current!.Id;
            ((ManualResetEventSlim)((object[])o!)[1]).Set();
        }, new object[] { box, done }, 42);
        done.WaitOrFail("message to CPU 1");
        Assert.Equal(42, box.Value);
        Assert.Equal(1, box.Cpu);
    }

    [Fact]
    public async Task TypedSend_PassesArgumentWithoutCast()
    {
        await using var runtime = TestUtil.Start(2);
        var box = new Box();
        await runtime[0].InvokeAsync(() =>
        {
            long seq = runtime[1].Send<Box>(static (b, a) => { b.Value += a; b.Cpu = Cpu.Current!.Id; }, box, 7);
            runtime[1].WaitFor(seq);
        }).AsTask().WithHangDetector();
        Assert.Equal(7, box.Value);
        Assert.Equal(1, box.Cpu);
    }

    [Fact]
    public async Task SendToSelf_CallsDirectly_AndReturnsIncreasingSequence()
    {
        await using var runtime = TestUtil.Start(2);
        var (first, second, ranInline) = await runtime[0].InvokeAsync(() =>
        {
            var box = new Box();
            long s1 = Cpu.Current!.Send(static (o, _) => ((Box)o!).Value++, box);
            bool inline = box.Value == 1; // ran before Send returned
            long s2 = Cpu.Current!.Send(static (o, _) => ((Box)o!).Value++, box);
            Cpu.Current!.WaitFor(s2); // already executed: returns at once
            return (s1, s2, inline);
        }).AsTask().WithHangDetector();
        Assert.True(ranInline);
        Assert.True(second > first);
    }

    [Fact]
    public async Task SendToMask_ReachesEveryCpuInMask_AndReturnsCount()
    {
        await using var runtime = TestUtil.Start(4);
        var hits = new int[4];
        int count = await runtime[2].InvokeAsync(() =>
        {
            int n = runtime.SendToMask(CpuMask.Of(0, 2, 3), static (o, _) => Interlocked.Increment(ref ((int[])o!)[Cpu.Current!.Id]), hits);
            runtime.Synchronize();
            return n;
        }).AsTask().WithHangDetector();
        Assert.Equal(3, count);
        Assert.Equal(new[] { 1, 0, 1, 1 }, hits);
    }

    [Fact]
    public async Task SendToMask_FromOutside_AndSynchronize()
    {
        await using var runtime = TestUtil.Start(3);
        var hits = new int[3];
        int n = runtime.SendToMask(runtime.AllCpus, static (o, _) => Interlocked.Increment(ref ((int[])o!)[Cpu.Current!.Id]), hits);
        runtime.Synchronize();
        Assert.Equal(3, n);
        Assert.Equal(new[] { 1, 1, 1 }, hits);
    }

    [Fact]
    public async Task Synchronize_FromCpu_WaitsForEverythingSentBefore()
    {
        await using var runtime = TestUtil.Start(3);
        var counts = new long[3];
        long[] seen = await runtime[0].InvokeAsync(() =>
        {
            for (int i = 0; i < 10_000; i++)
            {
                runtime[1].Send(static (o, _) => ((long[])o!)[1]++, counts);
                runtime[2].Send(static (o, _) => ((long[])o!)[2]++, counts);
            }
            runtime.Synchronize();
            return new[] { Volatile.Read(ref counts[1]), Volatile.Read(ref counts[2]) };
        }).AsTask().WithHangDetector();
        Assert.Equal(new long[] { 10_000, 10_000 }, seen);
    }

    [Fact]
    public async Task Post_RunsAsTaskOnTarget_InOrderWithSends()
    {
        await using var runtime = TestUtil.Start(2);
        var log = new List<string>();
        using var done = new ManualResetEventSlim();
        await runtime[0].InvokeAsync(() =>
        {
            runtime[1].Send(static (o, _) => ((List<string>)o!).Add("ipi"), log);
            runtime[1].Post(() =>
            {
                log.Add($"task on {Cpu.Current!.Id}");
                done.Set();
            });
        }).AsTask().WithHangDetector();
        done.WaitOrFail("posted task");
        // Both ran on CPU 1 (the list is only touched there); the post came after the IPI from the same sender.
        Assert.Equal(new[] { "ipi", "task on 1" }, log);
    }

    [Fact]
    public async Task TrySend_FromCpu_FailsAtTwoThirds_WithoutWaiting()
    {
        await using var runtime = TestUtil.Start(2, o => o.FifoCapacity = 16);
        using var gate = new ManualResetEventSlim();
        // CPU 1 is stuck in a function until the test lets it go: what follows queues behind it, whatever the timing.
        TestUtil.Block(runtime[1], gate);
        (int accepted, long failed) = await runtime[0].InvokeAsync(() =>
        {
            int ok = 0;
            while (runtime[1].TrySend(static (_, _) => { }) && ok < 100) ok++;
            return (ok, Cpu.Current!.GetStatistics().SendFailed);
        }).AsTask().WithHangDetector();
        gate.Set();
        // 16 * 2/3 = 10: the ring accepts 10 entries and refuses the 11th.
        Assert.Equal(10, accepted);
        Assert.Equal(1, failed);
    }

    [Fact]
    public async Task Statistics_CountSends_AndResetStartsFromZero()
    {
        await using var runtime = TestUtil.Start(2);
        await runtime[0].InvokeAsync(() =>
        {
            long seq = 0;
            for (int i = 0; i < 1000; i++) seq = runtime[1].Send(static (_, _) => { });
            runtime[1].WaitFor(seq);
        }).AsTask().WithHangDetector();
        CpuStatistics s0 = runtime[0].GetStatistics();
        CpuStatistics s1 = runtime[1].GetStatistics();
        Assert.True(s0.Sent >= 1000, $"sent {s0.Sent}");
        Assert.True(s1.Received >= 1000, $"received {s1.Received}");
        // Every normal send either woke the target or avoided the wake.
        Assert.True(s0.WakesSent + s0.Avoided >= 1000);
        runtime.ResetStatistics();
        Assert.Equal(0, runtime[0].GetStatistics().Sent);
        Assert.Equal(0, runtime.GetStatistics().Received);
    }
}
