using System.Collections.Concurrent;
using static PerCpu.Tests.SoftInterrupts.SoftTestUtil;

namespace PerCpu.Tests.SoftInterrupts;

/// <summary>Asynchronous handlers that block: the level waits, everything else goes on.</summary>
public sealed class BlockingTests
{
    private static readonly Action<object?, long> s_log = static (l, _) => ((Log)l!).Add("ipi");

    [Fact]
    public async Task BlockedHandler_HoldsItsLevelOnly_IpisTasksAndOtherLevelsGoOn()
    {
        await using var runtime = Manual();
        Cpu cpu = runtime[0];
        var log = new Log();
        var gate = new TaskCompletionSource();
        int runs = 0;
        SoftInterrupt blocker = runtime.Establish(SoftLevel.Net, async _ =>
        {
            int run = ++runs;
            log.Add($"A{run} start");
            if (run == 1) await gate.Task;
            log.Add($"A{run} end");
        });
        SoftInterrupt sameLevel = runtime.Establish(SoftLevel.Net, _ => log.Add("B"));
        SoftInterrupt lowerLevel = runtime.Establish(SoftLevel.Bio, _ => log.Add("C"));
        Run(cpu, () =>
        {
            blocker.Schedule();
            sameLevel.Schedule();
            lowerLevel.Schedule();
        });
        Assert.Equal(["A1 start", "C"], log.Entries);
        Assert.Equal(1, cpu.GetSoftInterruptStatistics(SoftLevel.Net).Blocks);

        // IPIs and tasks go on; the blocked handler, scheduled again, waits behind B.
        cpu.Send(s_log, log);
        cpu.Post(() => log.Add("task"));
        Run(cpu, blocker.Schedule);
        Run(cpu, lowerLevel.Schedule);
        Drain(runtime);
        Assert.Equal(["A1 start", "C", "ipi", "task", "C"], log.Entries);

        gate.SetResult(); // its continuation is posted to CPU 0
        Drain(runtime);
        Assert.Equal(["A1 start", "C", "ipi", "task", "C", "A1 end", "B", "A2 start", "A2 end"], log.Entries);
        SoftInterruptStatistics net = cpu.GetSoftInterruptStatistics(SoftLevel.Net);
        Assert.Equal(3, net.Count);
        Assert.Equal(1, net.Blocks);
        Assert.Equal(0, net.Errors);
        Assert.Equal(2, cpu.GetSoftInterruptStatistics(SoftLevel.Bio).Count);
    }

    [Fact]
    public async Task BlockedOnOneCpu_TheSameLevelRunsOnTheOthers()
    {
        await using var runtime = Manual();
        var log = new Log();
        var gate = new TaskCompletionSource();
        SoftInterrupt blocker = runtime.Establish(SoftLevel.Serial, async _ => await gate.Task);
        SoftInterrupt other = runtime.Establish(SoftLevel.Serial, _ => log.Add($"other on {Cpu.Current!.Id}"));
        Run(runtime[0], () =>
        {
            blocker.Schedule();
            other.Schedule();
        });
        Run(runtime[1], other.Schedule);
        Assert.Equal(["other on 1"], log.Entries);
        gate.SetResult();
        Drain(runtime);
        Assert.Equal(["other on 1", "other on 0"], log.Entries);
    }

    [Fact]
    public async Task AsyncHandlerThatCompletesAtOnce_DoesNotBlock()
    {
        await using var runtime = Manual();
        int runs = 0;
        SoftInterrupt si = runtime.Establish(SoftLevel.Clock, _ =>
        {
            runs++;
            return ValueTask.CompletedTask;
        });
        Run(runtime[0], si.Schedule);
        Assert.Equal(1, runs);
        Assert.Equal(0, runtime[0].GetSoftInterruptStatistics(SoftLevel.Clock).Blocks);
        Assert.Equal(1, runtime[0].GetSoftInterruptStatistics(SoftLevel.Clock).Count);
    }

    [Fact]
    public async Task AsyncHandlerFailingAfterItsAwait_IsCountedAndReported_TheLevelGoesOn()
    {
        await using var runtime = Manual();
        var log = new Log();
        var reported = new ConcurrentQueue<Exception>();
        runtime.UnhandledException += (_, e) => reported.Enqueue(e.Exception);
        SoftInterrupt failing = runtime.Establish(SoftLevel.Net, async _ =>
        {
            await Task.Yield();
            throw new InvalidTimeZoneException("late");
        });
        SoftInterrupt next = runtime.Establish(SoftLevel.Net, _ => log.Add("next"));
        SoftInterrupt syncFailing = runtime.Establish(SoftLevel.Net, _ => throw new InvalidTimeZoneException("early"));
        Run(runtime[0], () =>
        {
            failing.Schedule();
            next.Schedule();
        });
        Drain(runtime);
        Assert.Equal(["next"], log.Entries);
        Assert.IsType<InvalidTimeZoneException>(Assert.Single(reported));
        Assert.Equal(1, runtime[0].GetSoftInterruptStatistics(SoftLevel.Net).Errors);
        Assert.Equal(1, runtime[0].GetSoftInterruptStatistics(SoftLevel.Net).Blocks);
        Run(runtime[0], syncFailing.Schedule);
        Assert.Equal(2, runtime[0].GetSoftInterruptStatistics(SoftLevel.Net).Errors);
        Assert.Equal(2, runtime[0].GetStatistics().Errors);
    }

    [Fact]
    public async Task AsyncHandler_ResumesOnItsCpu_AndRuntimeDisposalWaitsForIt()
    {
        var runtime = TestUtil.Start(2);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int resumedOn = -2;
        SoftInterrupt si = runtime.Establish(SoftLevel.Bio, async _ =>
        {
            started.TrySetResult();
            await Task.Yield();
            await gate.Task;
            resumedOn = Cpu.Current?.Id ?? -1;
        });
        si.ScheduleOn(runtime[1]);
        await started.Task.WithHangDetector();
        // A blocked run is work in flight: the runtime must not stop before it completes, on its CPU.
        Task disposal = runtime.DisposeAsync().AsTask();
        gate.SetResult();
        await disposal.WithHangDetector();
        Assert.Equal(1, resumedOn);
        Assert.Equal(1, runtime[1].GetSoftInterruptStatistics(SoftLevel.Bio).Blocks);
    }
}
