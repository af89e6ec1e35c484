using System.Collections.Concurrent;
using static PerCpu.Tests.SoftInterrupts.SoftTestUtil;

namespace PerCpu.Tests.SoftInterrupts;

/// <summary>Scheduling, coalescing, priority and FIFO order, per-CPU placement, bad calls. Deterministic: manual runtimes unless noted.</summary>
public sealed class ScheduleTests
{
    private sealed class Counter
    {
        public int Value;
    }

    private static readonly Action<object?> s_count = static c => ((Counter)c!).Value++;
    private static readonly Action<object?, long> s_scheduleIt = static (h, _) => ((SoftInterrupt)h!).Schedule();

    [Fact]
    public async Task ScheduledTwiceWhilePending_RunsOnce()
    {
        await using var runtime = Manual();
        var counter = new Counter();
        using SoftInterrupt si = runtime.Establish(SoftLevel.Net, s_count, counter);
        int seenInside = -1;
        Run(runtime[0], () =>
        {
            si.Schedule();
            si.Schedule();
            seenInside = counter.Value; // soft interrupts run after the IPI that scheduled them, not inside it
        });
        Assert.Equal(0, seenInside);
        Assert.Equal(1, counter.Value);
        Drain(runtime);
        Assert.Equal(1, counter.Value);
        Assert.Equal(1, runtime[0].GetSoftInterruptStatistics(SoftLevel.Net).Count);
    }

    [Fact]
    public async Task ScheduledAThousandTimesFromIpis_WhilePending_RunsOnce()
    {
        await using var runtime = Manual(2, o => o.FifoCapacity = 4096);
        var counter = new Counter();
        using SoftInterrupt si = runtime.Establish(SoftLevel.Bio, s_count, counter);
        // CPU 1 sends a thousand IPIs to CPU 0, each of which schedules the handler; CPU 0 then drains them all in one
        // pass, before its soft interrupt step.
        Run(runtime[1], () =>
        {
            for (int i = 0; i < 1000; i++) runtime[0].Send(s_scheduleIt, si);
        });
        long receivedBefore = runtime[0].GetStatistics().Received;
        runtime[0].RunOnce();
        Assert.Equal(1000, runtime[0].GetStatistics().Received - receivedBefore);
        Assert.Equal(1, counter.Value);
        Drain(runtime);
        Assert.Equal(1, counter.Value);
    }

    [Fact]
    public async Task ScheduleOnAThousandTimesWhilePending_SendsOneMessage_RunsOnce()
    {
        await using var runtime = Manual();
        var counter = new Counter();
        using SoftInterrupt si = runtime.Establish(SoftLevel.Net, s_count, counter);
        for (int i = 0; i < 1000; i++) si.ScheduleOn(runtime[1]);
        Assert.Equal(1, runtime[1].Inbox.EnqueuedCount); // coalesced: one message on its way
        Drain(runtime);
        Assert.Equal(1, counter.Value);
        si.ScheduleOn(runtime[1]); // the message has run: a new request sends a new one
        Assert.Equal(2, runtime[1].Inbox.EnqueuedCount);
        Drain(runtime);
        Assert.Equal(2, counter.Value);
    }

    [Fact]
    public async Task ScheduleOnFromAnotherCpu_CoalescesOnTheRing()
    {
        await using var runtime = Manual();
        var counter = new Counter();
        using SoftInterrupt si = runtime.Establish(SoftLevel.Net, s_count, counter);
        Run(runtime[0], () =>
        {
            for (int i = 0; i < 1000; i++) si.ScheduleOn(runtime[1]);
        });
        Assert.Equal(1, runtime[0].OutgoingRings[1]!.P.WLocal);
        Drain(runtime);
        Assert.Equal(1, counter.Value);
        Assert.Equal(0, runtime[0].GetSoftInterruptStatistics(SoftLevel.Net).Count);
        Assert.Equal(1, runtime[1].GetSoftInterruptStatistics(SoftLevel.Net).Count);
    }

    [Fact]
    public async Task ScheduledAgainWhileRunning_RunsOnceMoreAfterwards()
    {
        await using var runtime = Manual();
        int runs = 0;
        bool inside = false, overlapped = false;
        SoftInterrupt? si = null;
        si = runtime.Establish(SoftLevel.Net, _ =>
        {
            overlapped |= inside;
            inside = true;
            if (++runs == 1)
            {
                si!.Schedule();
                si.Schedule();
                si.Schedule();
            }
            inside = false;
        });
        Run(runtime[0], si.Schedule);
        Drain(runtime);
        Assert.Equal(2, runs);
        Assert.False(overlapped);
        si.Dispose();
    }

    [Fact]
    public async Task AllFourLevelsPending_RunSerialNetBioClock()
    {
        await using var runtime = Manual();
        var log = new Log();
        Action<object?> record = s => log.Add((string)s!);
        SoftInterrupt clock = runtime.Establish(SoftLevel.Clock, record, "clock");
        SoftInterrupt bio = runtime.Establish(SoftLevel.Bio, record, "bio");
        SoftInterrupt net = runtime.Establish(SoftLevel.Net, record, "net");
        SoftInterrupt serial = runtime.Establish(SoftLevel.Serial, record, "serial");
        Run(runtime[0], () =>
        {
            clock.Schedule();
            bio.Schedule();
            net.Schedule();
            serial.Schedule();
        });
        Assert.Equal(["serial", "net", "bio", "clock"], log.Entries);
    }

    [Fact]
    public async Task WithinALevel_HandlersRunInScheduleOrder()
    {
        await using var runtime = Manual();
        var log = new Log();
        Action<object?> record = s => log.Add((string)s!);
        SoftInterrupt[] handles = new[] { "a", "b", "c", "d", "e" }.Select(n => runtime.Establish(SoftLevel.Bio, record, n)).ToArray();
        Run(runtime[0], () =>
        {
            foreach (int i in new[] { 3, 1, 4, 0, 2, 1, 3 }) handles[i].Schedule();
        });
        Assert.Equal(["d", "b", "e", "a", "c"], log.Entries);
        Run(runtime[0], () =>
        {
            foreach (int i in new[] { 0, 4, 2 }) handles[i].Schedule();
        });
        Assert.Equal(["d", "b", "e", "a", "c", "a", "e", "c"], log.Entries);
    }

    [Fact]
    public async Task AHandlerThatSchedulesAHigherLevel_ItRunsBeforeTheRestOfItsOwnLevel()
    {
        await using var runtime = Manual();
        var log = new Log();
        SoftInterrupt serial = runtime.Establish(SoftLevel.Serial, _ => log.Add("serial"));
        SoftInterrupt first = runtime.Establish(SoftLevel.Clock, _ =>
        {
            log.Add("clock 1");
            serial.Schedule();
        });
        SoftInterrupt second = runtime.Establish(SoftLevel.Clock, _ => log.Add("clock 2"));
        Run(runtime[0], () =>
        {
            first.Schedule();
            second.Schedule();
        });
        Assert.Equal(["clock 1", "serial", "clock 2"], log.Entries);
    }

    [Fact]
    public async Task AnIpiArrivingWhileAHandlerRuns_RunsBeforeTheNextHandler()
    {
        await using var runtime = Manual();
        var log = new Log();
        Cpu cpu0 = runtime[0];
        SoftInterrupt first = runtime.Establish(SoftLevel.Net, _ =>
        {
            log.Add("handler 1");
            // A thread that is not a CPU sends CPU 0 an IPI while this handler runs (the inbox has room: no waiting).
            var sender = new Thread(() => cpu0.Send(static (l, _) => ((Log)l!).Add("ipi"), log));
            sender.Start();
            sender.Join();
        });
        SoftInterrupt second = runtime.Establish(SoftLevel.Net, _ => log.Add("handler 2"));
        Run(cpu0, () =>
        {
            first.Schedule();
            second.Schedule();
        });
        Assert.Equal(["handler 1", "ipi", "handler 2"], log.Entries);
    }

    [Fact]
    public async Task ScheduleOn_RunsOnThatCpuOnly()
    {
        await using var runtime = TestUtil.Start(3);
        var ranOn = new ConcurrentQueue<int>();
        TaskCompletionSource? ran = null;
        using SoftInterrupt si = runtime.Establish(SoftLevel.Net, _ =>
        {
            ranOn.Enqueue(Cpu.Current!.Id);
            ran!.TrySetResult();
        });
        foreach (int k in new[] { 2, 0, 1, 1 })
        {
            ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            si.ScheduleOn(runtime[k]);
            await ran.Task.WithHangDetector();
        }
        // Schedule() on a CPU runs there.
        ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await runtime[2].InvokeAsync(si.Schedule).AsTask().WithHangDetector();
        await ran.Task.WithHangDetector();
        // A round through every CPU: nothing else was pending anywhere.
        foreach (Cpu cpu in runtime.Cpus) await cpu.InvokeAsync(static () => { }).AsTask().WithHangDetector();
        Assert.Equal([2, 0, 1, 1, 2], ranOn.ToArray());
        Assert.Equal(2, runtime[1].GetSoftInterruptStatistics(SoftLevel.Net).Count);
        Assert.Equal(1, runtime[0].GetSoftInterruptStatistics(SoftLevel.Net).Count);
        Assert.Equal(2, runtime[2].GetSoftInterruptStatistics(SoftLevel.Net).Count);
        Assert.Equal(5, runtime.GetSoftInterruptStatistics(SoftLevel.Net).Count);
    }

    [Fact]
    public async Task ScheduleOnTheCallingCpu_IsALocalSchedule()
    {
        await using var runtime = Manual();
        var counter = new Counter();
        using SoftInterrupt si = runtime.Establish(SoftLevel.Net, s_count, counter);
        long sentBefore = runtime[0].GetStatistics().Sent;
        Run(runtime[0], () => si.ScheduleOn(runtime[0]));
        Assert.Equal(1, counter.Value);
        Assert.Equal(sentBefore, runtime[0].GetStatistics().Sent); // no IPI, not even to itself
    }

    [Fact]
    public async Task ScheduleOffCpu_ThrowsPointingToScheduleOn()
    {
        await using var runtime = Manual();
        using SoftInterrupt si = runtime.Establish(SoftLevel.Net, s_count, new Counter());
        var e = Assert.Throws<InvalidOperationException>(si.Schedule);
        Assert.Contains("ScheduleOn", e.Message);
    }

    [Fact]
    public async Task CpusOfAnotherRuntime_AreRefused()
    {
        await using var a = Manual();
        await using var b = Manual();
        var counter = new Counter();
        using SoftInterrupt si = a.Establish(SoftLevel.Net, s_count, counter);
        var e = Assert.Throws<ArgumentException>(() => si.ScheduleOn(b[0]));
        Assert.Contains("another CpuRuntime", e.Message);
        var inside = Assert.Throws<InvalidOperationException>(() => Run(b[0], si.Schedule));
        Assert.Contains("another CpuRuntime", inside.Message);
        Assert.Throws<ArgumentNullException>(() => si.ScheduleOn(null!));
        Drain(a);
        Drain(b);
        Assert.Equal(0, counter.Value);
    }

    [Fact]
    public async Task TableFull_ThrowsAClearError_AndADisposedSlotIsReused()
    {
        await using var runtime = Manual(2, o => o.MaxSoftInterrupts = 3);
        var counter = new Counter();
        SoftInterrupt[] handles = [.. Enumerable.Range(0, 3).Select(_ => runtime.Establish(SoftLevel.Clock, s_count, counter))];
        var e = Assert.Throws<InvalidOperationException>(() => runtime.Establish(SoftLevel.Clock, s_count, counter));
        Assert.Contains("MaxSoftInterrupts", e.Message);
        Assert.Contains("full", e.Message);
        handles[1].Dispose();
        SoftInterrupt again = runtime.Establish(SoftLevel.Serial, s_count, counter);
        Assert.Equal(handles[1].Slot, again.Slot);
        Run(runtime[0], again.Schedule);
        Assert.Equal(1, counter.Value);
    }

    [Fact]
    public async Task ThrowingHandler_IsCountedAndReported_TheOthersStillRun()
    {
        await using var runtime = Manual();
        var log = new Log();
        var reported = new ConcurrentQueue<CpuExceptionEventArgs>();
        runtime.UnhandledException += (_, e) => reported.Enqueue(e);
        SoftInterrupt before = runtime.Establish(SoftLevel.Net, _ => log.Add("before"));
        SoftInterrupt thrower = runtime.Establish(SoftLevel.Net, _ => throw new InvalidTimeZoneException("boom"));
        SoftInterrupt after = runtime.Establish(SoftLevel.Net, _ => log.Add("after"));
        SoftInterrupt lower = runtime.Establish(SoftLevel.Clock, _ => log.Add("lower"));
        Run(runtime[0], () =>
        {
            before.Schedule();
            thrower.Schedule();
            after.Schedule();
            lower.Schedule();
        });
        Assert.Equal(["before", "after", "lower"], log.Entries);
        CpuExceptionEventArgs report = Assert.Single(reported);
        Assert.IsType<InvalidTimeZoneException>(report.Exception);
        Assert.Same(runtime[0], report.Cpu);
        Assert.Equal(1, runtime[0].GetSoftInterruptStatistics(SoftLevel.Net).Errors);
        Assert.Equal(3, runtime[0].GetSoftInterruptStatistics(SoftLevel.Net).Count);
        Assert.Equal(0, runtime[0].GetSoftInterruptStatistics(SoftLevel.Clock).Errors);
        Assert.Equal(1, runtime[0].GetStatistics().Errors);
        // The thrower can run again.
        Run(runtime[0], thrower.Schedule);
        Assert.Equal(2, runtime.GetSoftInterruptStatistics(SoftLevel.Net).Errors);
    }

    [Fact]
    public async Task Statistics_ArePerCpuPerLevel_AndReset()
    {
        await using var runtime = Manual();
        var counter = new Counter();
        SoftInterrupt net = runtime.Establish(SoftLevel.Net, s_count, counter);
        SoftInterrupt clock = runtime.Establish(SoftLevel.Clock, s_count, counter);
        Run(runtime[0], net.Schedule);
        Run(runtime[0], net.Schedule);
        Run(runtime[1], clock.Schedule);
        Assert.Equal(2, runtime[0].GetSoftInterruptStatistics(SoftLevel.Net).Count);
        Assert.Equal(0, runtime[0].GetSoftInterruptStatistics(SoftLevel.Clock).Count);
        Assert.Equal(1, runtime[1].GetSoftInterruptStatistics(SoftLevel.Clock).Count);
        Assert.Equal(0, runtime[1].GetSoftInterruptStatistics(SoftLevel.Net).Count);
        Assert.Equal(2, runtime.GetSoftInterruptStatistics(SoftLevel.Net).Count);
        Assert.Equal(TimeSpan.Zero, runtime.GetSoftInterruptStatistics(SoftLevel.Net).Time); // timing is off by default
        runtime.ResetStatistics();
        Assert.Equal(default, runtime.GetSoftInterruptStatistics(SoftLevel.Net));
        Run(runtime[0], net.Schedule);
        Assert.Equal(1, runtime[0].GetSoftInterruptStatistics(SoftLevel.Net).Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => runtime[0].GetSoftInterruptStatistics((SoftLevel)4));
    }

    [Fact]
    public async Task Timing_WhenOn_CountsTheTimeSpentInHandlers()
    {
        await using var runtime = Manual(2, o => o.SoftInterruptTiming = true);
        TimeSpan spent = TimeSpan.FromMilliseconds(2);
        SoftInterrupt si = runtime.Establish(SoftLevel.Bio, _ =>
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            while (System.Diagnostics.Stopwatch.GetElapsedTime(start) < spent) Thread.SpinWait(10);
        });
        Run(runtime[1], si.Schedule);
        Assert.True(runtime[1].GetSoftInterruptStatistics(SoftLevel.Bio).Time >= spent);
        Assert.Equal(TimeSpan.Zero, runtime[1].GetSoftInterruptStatistics(SoftLevel.Net).Time);
    }

    [Fact]
    public async Task Establish_BadArguments_AreRefusedClearly()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Manual(2, o => o.MaxSoftInterrupts = 0));
        var runtime = Manual();
        Assert.Throws<ArgumentNullException>(() => runtime.Establish(SoftLevel.Net, (Action<object?>)null!));
        Assert.Throws<ArgumentNullException>(() => runtime.Establish(SoftLevel.Net, (Func<object?, ValueTask>)null!));
        Assert.Throws<ArgumentOutOfRangeException>(() => runtime.Establish((SoftLevel)7, s_count));
        await runtime.DisposeAsync();
        Assert.Throws<ObjectDisposedException>(() => runtime.Establish(SoftLevel.Net, s_count));
    }

    [Fact]
    public async Task AnAsyncLambda_BindsToTheAsyncOverload()
    {
        await using var runtime = Manual();
        using SoftInterrupt si = runtime.Establish(SoftLevel.Net, async _ => await Task.Yield());
        Assert.NotNull(si.AsyncHandler);
        Assert.Null(si.SyncHandler);
        using SoftInterrupt sync = runtime.Establish(SoftLevel.Net, _ => { });
        Assert.NotNull(sync.SyncHandler);
        Assert.Equal(SoftLevel.Net, si.Level);
        Assert.Same(runtime, si.Runtime);
    }
}
