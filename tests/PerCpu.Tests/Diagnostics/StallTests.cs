using System.Diagnostics;
using System.Diagnostics.Tracing;
using PerCpu.Diagnostics;

namespace PerCpu.Tests.Diagnostics;

/// <summary>
/// The stall watchdog (issue 11). The tests drive it with <see cref="StallWatchdog.CheckNow(long, List{StallReport}?)"/>
/// and a fake clock, and hold CPUs on gates they release themselves: no outcome depends on timing or machine load. Idle
/// CPUs get a one-hour tick and no idle spin, and the tests wait until they are asleep, so that they stay idle.
/// </summary>
public sealed class StallTests
{
    private static readonly TimeSpan s_threshold = TimeSpan.FromMilliseconds(50);
    private static readonly long s_th = (long)(s_threshold.TotalSeconds * Stopwatch.Frequency);

    /// <summary>Fake clock origin (any value but 0).</summary>
    private const long T0 = 1L << 40;

    private static CpuRuntime StartWatched(int cpus = 2) => TestUtil.Start(cpus, o =>
    {
        o.StallThreshold = s_threshold;
        o.StallWatchdogTimer = false; // the test drives CheckNow with its fake clock
        o.IdleSpin = TimeSpan.Zero;
        o.TickInterval = TimeSpan.FromHours(1);
    });

    private static void UntilAsleep(Cpu cpu)
    {
        if (!SpinWait.SpinUntil(() => cpu.IsAsleep, TestUtil.Hang))
            throw new Xunit.Sdk.XunitException($"Hang detector fired: CPU {cpu.Id} never parked");
    }

    /// <summary>Looks at times T0 + k * threshold for each k in <paramref name="steps"/>; returns every report.</summary>
    private static List<StallReport> Look(CpuRuntime runtime, params double[] steps)
    {
        var reports = new List<StallReport>();
        foreach (double k in steps) runtime.StallWatchdog!.CheckNow(T0 + (long)(k * s_th), reports);
        return reports;
    }

    /// <summary>Holds a CPU; disposed (declared after the runtime) it lets the CPU go, so a failed assertion cannot hang the runtime's disposal.</summary>
    private sealed class Gate : IDisposable
    {
        public readonly ManualResetEventSlim Entered = new(), Release = new();

        public void Dispose() => Release.Set();
    }

    private static Gate NewGate() => new();

    /// <summary>An IPI function that holds its CPU until the test releases it.</summary>
    private static void BlockOnGate(object? state, long _)
    {
        var gate = (Gate)state!;
        gate.Entered.Set();
        gate.Release.Wait();
    }

    /// <summary>A soft interrupt handler that holds its CPU until the test releases it.</summary>
    private static void BlockOnGateSoft(object? state) => BlockOnGate(state, 0);

    private static readonly Action<object?, long> s_noop = static (_, _) => { };

    private sealed class TaskBlocker(Gate gate)
    {
        public void Block() => BlockOnGate(gate, 0);
    }

    [Fact]
    public async Task BlockedFunction_IsReportedOnce_WithCpuPhaseMethodAndWhatWaits_AndNotAgainOnceReleased()
    {
        await using var runtime = StartWatched();
        var warnings = new List<CpuWarningEventArgs>();
        runtime.Warning += (_, e) => { lock (warnings) warnings.Add(e); };
        UntilAsleep(runtime[0]);
        using Gate gate = NewGate();
        runtime[1].Send((Action<object?, long>)BlockOnGate, gate);
        gate.Entered.WaitOrFail("CPU 1 to enter the blocking function");
        for (int i = 0; i < 10; i++) runtime[1].Send(s_noop);

        Assert.Empty(Look(runtime, 0, 0.5, 0.99));
        List<StallReport> reports = Look(runtime, 1, 1.5, 3, 10);
        StallReport report = Assert.Single(reports);
        Assert.Same(runtime[1], report.Cpu);
        Assert.Equal(StallPhase.Ipis, report.Phase);
        Assert.Equal($"{typeof(StallTests).FullName}.{nameof(BlockOnGate)}", report.Running);
        Assert.True(report.Waiting >= 10, $"waiting {report.Waiting}");
        Assert.True(report.Elapsed >= s_threshold, $"elapsed {report.Elapsed}");
        Assert.False(report.Rewoken);
        lock (warnings)
        {
            CpuWarningEventArgs warning = Assert.Single(warnings);
            Assert.Same(runtime[1], warning.Cpu);
            Assert.Contains(nameof(BlockOnGate), warning.Message);
            Assert.Contains("StallThreshold", warning.Message);
        }
        Assert.Equal(1, runtime[1].GetStatistics().Stalls);

        gate.Release.Set();
        await runtime[1].InvokeAsync(static () => { }).AsTask().WithHangDetector(); // everything behind it ran
        UntilAsleep(runtime[1]);
        Assert.Empty(Look(runtime, 11, 12, 13, 20));
        Assert.Equal(1, runtime.GetStatistics().Stalls);
    }

    [Fact]
    public async Task BlockedSoftInterrupt_IsReported_InTheSoftInterruptPhase_NamingHandleAndHandler()
    {
        await using var runtime = StartWatched();
        UntilAsleep(runtime[0]);
        using Gate gate = NewGate();
        using SoftInterrupt si = runtime.Establish(SoftLevel.Net, BlockOnGateSoft, gate);
        si.ScheduleOn(runtime[1]);
        gate.Entered.WaitOrFail("CPU 1 to enter the blocking handler");

        StallReport report = Assert.Single(Look(runtime, 0, 1, 2));
        Assert.Same(runtime[1], report.Cpu);
        Assert.Equal(StallPhase.SoftInterrupts, report.Phase);
        Assert.Contains("Soft interrupt Net", report.Running);
        Assert.Contains($"{typeof(StallTests).FullName}.{nameof(BlockOnGateSoft)}", report.Running);
        gate.Release.Set();
    }

    [Fact]
    public async Task BlockedTask_IsReported_InTheTaskPhase_NamingTheCallback()
    {
        await using var runtime = StartWatched();
        UntilAsleep(runtime[0]);
        using Gate gate = NewGate();
        runtime[1].Post(new TaskBlocker(gate).Block);
        gate.Entered.WaitOrFail("CPU 1 to enter the blocking task");

        StallReport report = Assert.Single(Look(runtime, 0, 1, 2));
        Assert.Same(runtime[1], report.Cpu);
        Assert.Equal(StallPhase.Tasks, report.Phase);
        Assert.Equal($"{typeof(TaskBlocker).FullName}.{nameof(TaskBlocker.Block)}", report.Running);
        gate.Release.Set();
    }

    /// <summary>An await continuation is a task whose delegate belongs to the runtime: the report names the async method it resumes.</summary>
    [Fact]
    public async Task BlockedAwaitContinuation_IsNamedAfterTheAsyncMethod()
    {
        await using var runtime = StartWatched();
        UntilAsleep(runtime[0]);
        using Gate gate = NewGate();
        Task run = runtime[1].InvokeAsync(() => ResumeThenBlock(gate)).AsTask();
        gate.Entered.WaitOrFail("CPU 1 to resume and block");

        StallReport report = Assert.Single(Look(runtime, 0, 1, 2));
        Assert.Equal(StallPhase.Tasks, report.Phase);
        Assert.Equal($"{typeof(StallTests).FullName}.{nameof(ResumeThenBlock)} (async)", report.Running);
        gate.Release.Set();
        await run.WithHangDetector();
    }

    private static async ValueTask ResumeThenBlock(Gate gate)
    {
        await Task.Yield(); // resumes as a task on this CPU (its synchronization context)
        BlockOnGate(gate, 0);
    }

    /// <summary>
    /// A cpusync hold that keeps a CPU inside a wait (the only hold that keeps it from its loop: at the top of the loop a
    /// held CPU idles). CPU 1 waits for CPU 2, which the test holds on a gate; an outside master interlocks CPU 1, which
    /// then spins in the hold until the master lets it go.
    /// </summary>
    [Fact]
    public async Task CpuSyncHoldInsideAWait_IsReported_InTheCpuSyncHoldPhase()
    {
        await using var runtime = StartWatched(3);
        using Gate gate = NewGate();
        runtime[2].Send((Action<object?, long>)BlockOnGate, gate);
        gate.Entered.WaitOrFail("CPU 2 to block");
        Task waiter = runtime[1].InvokeAsync(() =>
        {
            long seq = runtime[2].Send(s_noop);
            runtime[2].WaitFor(seq); // CPU 1 waits here, draining its IPIs, until the gate opens
        }).AsTask();
        StallReport report;
        using (runtime.Interlock(CpuMask.Of(1)))
        {
            if (!SpinWait.SpinUntil(() => runtime[1].WatchdogPhase == StallPhase.CpuSyncHold, TestUtil.Hang))
                throw new Xunit.Sdk.XunitException("Hang detector fired: CPU 1 never entered the nested hold");
            report = Assert.Single(Look(runtime, 0, 1, 2), r => r.Cpu == runtime[1]);
        }
        gate.Release.Set();
        await waiter.WithHangDetector();
        Assert.Equal(StallPhase.CpuSyncHold, report.Phase);
        Assert.Contains("cpusync hold", report.Message);
    }

    [Fact]
    public async Task IdleRuntime_ReportsNothing_OverManyPeriods()
    {
        await using var runtime = StartWatched(3);
        foreach (Cpu cpu in runtime.Cpus) UntilAsleep(cpu);
        var steps = new double[40];
        for (int i = 0; i < steps.Length; i++) steps[i] = i * 0.5; // twenty thresholds, one look per period
        Assert.Empty(Look(runtime, steps));
        Assert.Equal(0, runtime.GetStatistics().Stalls);
    }

    /// <summary>
    /// DragonFly's "target not draining": CPU 1 sleeps (one-hour tick) with a passive message in its inbox and its mask
    /// bit set, which no sender will wake it for. The watchdog reports it once and wakes it; the message then runs.
    /// </summary>
    [Fact]
    public async Task ParkedCpuNotDraining_GetsASecondWake_AndTheReportSaysSo()
    {
        await using var runtime = StartWatched();
        UntilAsleep(runtime[0]);
        UntilAsleep(runtime[1]);
        using var ran = new ManualResetEventSlim();
        runtime[1].SendPassive(static (o, _) => ((ManualResetEventSlim)o!).Set(), ran);
        Assert.True(runtime[1].IsAsleep); // a passive send never wakes it; only its tick, an hour away, would

        // First look: a new watch. Second: parked with undrained work, noted. Third, a threshold later: report and wake.
        Assert.Empty(Look(runtime, 0, 0.5));
        StallReport report = Assert.Single(Look(runtime, 1.5, 2));
        Assert.Same(runtime[1], report.Cpu);
        Assert.True(report.Rewoken);
        Assert.Equal(StallPhase.Idle, report.Phase);
        Assert.True(report.Waiting >= 1, $"waiting {report.Waiting}");
        Assert.Contains("woken again", report.Message);
        ran.WaitOrFail("the passive message to run after the watchdog's wake");
        // Once: drained and asleep again, later looks report nothing more. (Looking again while the woken CPU is still
        // running the message would let the fake clock race ahead of it and report that as a stall.)
        UntilAsleep(runtime[1]);
        Assert.Empty(Look(runtime, 5, 5.5, 7));
        Assert.Equal(1, runtime[1].GetStatistics().Stalls);
    }

    [Fact]
    public async Task Watchdog_IsOff_WhenTheThresholdIsInfinite_AndStopsWithTheRuntime()
    {
        await using (var off = TestUtil.Start(1, o => o.StallThreshold = Timeout.InfiniteTimeSpan))
            Assert.Null(off.StallWatchdog);

        var runtime = StartWatched(1);
        StallWatchdog watchdog = runtime.StallWatchdog!;
        await runtime.DisposeAsync();
        Assert.Equal(0, watchdog.CheckNow());
    }

    private sealed class RuntimeEvents : EventListener
    {
        private readonly List<EventWrittenEventArgs> _events = [];

        public void Enable() => EnableEvents(PerCpuEventSource.Log, EventLevel.Informational, PerCpuEventSource.Keywords.Runtime);

        public List<EventWrittenEventArgs> Of(CpuRuntime runtime)
        {
            lock (_events) return _events.Where(e => e.PayloadNames!.Contains("runtimeId") && (int)e.Payload![e.PayloadNames.IndexOf("runtimeId")]! == runtime.DiagnosticsId).ToList();
        }

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            lock (_events) _events.Add(e);
        }
    }

    [Fact]
    public async Task Stall_IsWrittenToTheEventSource_AsAStallEvent_AndAsAWarning()
    {
        using var listener = new RuntimeEvents();
        listener.Enable();
        await using var runtime = StartWatched();
        UntilAsleep(runtime[0]);
        using Gate gate = NewGate();
        runtime[1].Send((Action<object?, long>)BlockOnGate, gate);
        gate.Entered.WaitOrFail("CPU 1 to enter the blocking function");
        Assert.Single(Look(runtime, 0, 1));

        List<EventWrittenEventArgs> events = listener.Of(runtime);
        EventWrittenEventArgs stall = Assert.Single(events, e => e.EventName == nameof(PerCpuEventSource.Stall));
        Assert.Equal(EventLevel.Warning, stall.Level);
        object?[] p = [.. stall.Payload!];
        Assert.Equal([runtime.DiagnosticsId, 1, nameof(StallPhase.Ipis), $"{typeof(StallTests).FullName}.{nameof(BlockOnGate)}"], p[..4]);
        Assert.True((long)p[4]! >= (long)s_threshold.TotalMilliseconds);
        Assert.False((bool)p[6]!);
        Assert.Contains(events, e => e.EventName == nameof(PerCpuEventSource.Warning) && ((string)e.Payload![2]!).Contains(nameof(BlockOnGate)));
    }

    [Fact]
    public void MethodName_OfAPlainDelegate_IsTypeAndMethod()
        => Assert.Equal($"{typeof(StallTests).FullName}.{nameof(BlockOnGate)}", StallWatchdog.MethodName((Action<object?, long>)BlockOnGate));
}
