namespace PerCpu.Tests.Core;

/// <summary>The dispatch loop's order and bounds.</summary>
public sealed class DispatchTests
{
    private sealed class Flood
    {
        public long TasksRun;
        public long TasksRunWhenIpiRan = -1;
        public volatile bool IpiSent;
    }

    /// <summary>
    /// Tasks run in bounded batches, so IPIs are never starved: CPU 1 queues a thousand tasks on itself; the first one
    /// waits until the test has sent CPU 1 an IPI (from outside, through the inbox), so the IPI is queued while 999
    /// tasks still are. It must run before the task queue is empty (after at most one batch); a loop that ran tasks
    /// until the queue was empty would run it after all thousand.
    /// </summary>
    [Fact]
    public async Task TaskFlood_DoesNotStarveIpis()
    {
        const int Tasks = 1000;
        await using var runtime = TestUtil.Start(2);
        var flood = new Flood();
        using var allRan = new ManualResetEventSlim();
        await runtime[1].InvokeAsync(() =>
        {
            Cpu self = Cpu.Current!;
            for (int i = 0; i < Tasks; i++)
            {
                bool first = i == 0;
                self.Post(() =>
                {
                    if (first) SpinWait.SpinUntil(() => flood.IpiSent); // the test sends the IPI, then lets this go
                    if (++flood.TasksRun == Tasks) allRan.Set();
                });
            }
        }).AsTask().WithHangDetector();
        using var ipiRan = new ManualResetEventSlim();
        runtime[1].Send(static (o, _) =>
        {
            var (f, done) = ((Flood, ManualResetEventSlim))o!;
            f.TasksRunWhenIpiRan = f.TasksRun;
            done.Set();
        }, (flood, ipiRan));
        flood.IpiSent = true;
        ipiRan.WaitOrFail("the IPI sent during the task flood");
        allRan.WaitOrFail("the task flood");
        long before = await runtime[1].InvokeAsync(() => flood.TasksRunWhenIpiRan).AsTask().WithHangDetector();
        Assert.InRange(before, 1, Tasks - 1);
    }
}
