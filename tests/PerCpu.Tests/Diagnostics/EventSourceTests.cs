using System.Diagnostics.Tracing;
using PerCpu.Diagnostics;

namespace PerCpu.Tests.Diagnostics;

/// <summary>
/// The PerCpu event source. In the Stress collection because it runs alone there: enabling the trace points puts
/// forwarding rings on every live runtime of the process, which would slow (and make allocate) other tests' runtimes.
/// </summary>
[Collection("Stress")]
public sealed class EventSourceTests
{
    private sealed class Listener : EventListener
    {
        private readonly List<EventWrittenEventArgs> _events = [];

        public void Enable(EventKeywords keywords) => EnableEvents(PerCpuEventSource.Log, EventLevel.Verbose, keywords);

        /// <summary>Events of one runtime (other tests' runtimes may still be alive), in the order written.</summary>
        public List<EventWrittenEventArgs> Of(CpuRuntime runtime)
        {
            lock (_events) return _events.Where(e => Payload<int>(e, "runtimeId") == runtime.DiagnosticsId).ToList();
        }

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            lock (_events) _events.Add(e);
        }
    }

    private static T Payload<T>(EventWrittenEventArgs e, string name)
    {
        int i = e.PayloadNames!.IndexOf(name);
        return i < 0 ? default! : (T)e.Payload![i]!;
    }

    private static readonly Action<object?, long> s_noop = static (_, _) => { };

    private static void CpuZeroSendsToCpuOne(CpuRuntime runtime)
    {
        runtime[0].Send(static (state, _) => ((CpuRuntime)state!)[1].Send(s_noop, null, 5), runtime, 3);
        runtime[0].RunOnce();
        runtime[1].RunOnce();
    }

    [Fact]
    public async Task TracePointKeyword_ForwardsEveryTracePoint_OfRuntimesOldAndNew_UntilTheListenerGoes()
    {
        await using var before = CpuRuntime.StartManual(new CpuRuntimeOptions { CpuCount = 2 });
        Assert.All(before.Cpus, cpu => Assert.Null(cpu.Trace));
        using var listener = new Listener();
        listener.Enable(PerCpuEventSource.Keywords.TracePoints);
        await using var after = CpuRuntime.StartManual(new CpuRuntimeOptions { CpuCount = 2 });

        foreach (CpuRuntime runtime in new[] { before, after })
        {
            Assert.All(runtime.Cpus, cpu => Assert.NotNull(cpu.Trace));
            CpuZeroSendsToCpuOne(runtime);
            var points = listener.Of(runtime).Where(e => e.EventName == nameof(PerCpuEventSource.TracePoint))
                .Select(e => (Payload<int>(e, "cpu"), Payload<string>(e, "point"), Payload<int>(e, "sourceCpu"), Payload<int>(e, "targetCpu"), Payload<long>(e, "argument")))
                .ToList();
            Assert.Equal(
                [(0, "receive", -1, 0, 3L), (0, "send_norm", 0, 1, 5L), (0, "send_end", 0, 1, 5L), (1, "receive", 0, 1, 5L)],
                points);
            EventWrittenEventArgs receive = listener.Of(runtime).Last();
            Assert.Contains(nameof(EventSourceTests), Payload<string>(receive, "function"));
            Assert.Equal(EventLevel.Verbose, receive.Level);
        }

        listener.Dispose();
        Assert.All(before.Cpus.Concat(after.Cpus), cpu => Assert.Null(cpu.Trace));
    }

    [Fact]
    public async Task TracePointKeyword_AndACapturingTrace_BothSeeTheEvents()
    {
        using var listener = new Listener();
        listener.Enable(PerCpuEventSource.Keywords.TracePoints);
        await using var runtime = CpuRuntime.StartManual(new CpuRuntimeOptions { CpuCount = 2 });
        runtime.StartTrace(64);
        CpuZeroSendsToCpuOne(runtime);
        CpuTrace trace = runtime.StopTrace();
        Assert.Equal(4, trace.Events.Count);
        Assert.Equal(4, listener.Of(runtime).Count(e => e.EventName == nameof(PerCpuEventSource.TracePoint)));
        Assert.All(runtime.Cpus, cpu => Assert.NotNull(cpu.Trace)); // back to forwarding only
        Assert.All(runtime.Cpus, cpu => Assert.False(cpu.Trace!.Captures));
    }

    [Fact]
    public async Task RuntimeKeyword_ReportsStartStopWarningsAndUnhandledExceptions_WithoutTracePoints()
    {
        using var listener = new Listener();
        listener.Enable(PerCpuEventSource.Keywords.Runtime);
        var runtime = CpuRuntime.StartManual(new CpuRuntimeOptions { CpuCount = 2 });
        Assert.All(runtime.Cpus, cpu => Assert.Null(cpu.Trace));

        runtime[1].Send(static (_, _) => throw new InvalidOperationException("boom"));
        runtime[1].RunOnce();
        runtime.RaiseWarning(runtime[0], "a warning for the log");
        await runtime.DisposeAsync();

        List<EventWrittenEventArgs> events = listener.Of(runtime);
        Assert.Equal(
            [nameof(PerCpuEventSource.RuntimeStarted), nameof(PerCpuEventSource.UnhandledException), nameof(PerCpuEventSource.Warning), nameof(PerCpuEventSource.RuntimeStopped)],
            events.Select(e => e.EventName));
        Assert.Equal(2, Payload<int>(events[0], "cpuCount"));
        EventWrittenEventArgs error = events[1];
        Assert.Equal(EventLevel.Error, error.Level);
        Assert.Equal((1, -1, "System.InvalidOperationException", "boom"),
            (Payload<int>(error, "cpu"), Payload<int>(error, "sourceCpu"), Payload<string>(error, "exceptionType"), Payload<string>(error, "message")));
        Assert.Equal(EventLevel.Warning, events[2].Level);
        Assert.Equal((0, "a warning for the log"), (Payload<int>(events[2], "cpu"), Payload<string>(events[2], "message")));
    }
}
