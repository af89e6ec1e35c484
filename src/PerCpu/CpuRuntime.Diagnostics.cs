using System.Diagnostics;
using System.Diagnostics.Metrics;
using PerCpu.Diagnostics;

namespace PerCpu;

// Observability: the PerCpu meter, the PerCpu event source, and KTR-like tracing (start, stop, export).
public sealed partial class CpuRuntime
{
    /// <summary>
    /// <c>"PerCpu"</c>: the name of the <see cref="System.Diagnostics.Metrics.Meter"/> (counters such as
    /// <c>percpu.ipi.messages.sent</c>, histograms <c>percpu.wait.duration</c> and <c>percpu.softint.duration</c>, gauge
    /// <c>percpu.inbox.depth</c>; attributes <c>percpu.cpu.id</c>, <c>percpu.sender</c>; <c>dotnet-counters monitor
    /// --counters PerCpu</c>, OpenTelemetry <c>AddMeter("PerCpu")</c>) and of the
    /// <see cref="System.Diagnostics.Tracing.EventSource"/> (keywords <c>0x1</c> trace points, <c>0x2</c> runtime events:
    /// <c>dotnet-trace collect --providers PerCpu:0x2:4</c>). Every instrument, attribute, event and keyword is listed in
    /// the repository's docs/diagnostics.md.
    /// </summary>
    public const string DiagnosticsName = "PerCpu";

    /// <summary>Largest <c>eventsPerCpu</c> for <see cref="StartTrace"/> (each event takes 48 bytes).</summary>
    private const int MaxTraceEventsPerCpu = 1 << 24;

    /// <summary>Runtimes created and not yet stopped, for the event source to reach when a listener comes. Guarded by itself.</summary>
    private static readonly List<CpuRuntime> s_live = [];

    /// <summary>Last diagnostics id handed out (atomics).</summary>
    private static int s_lastDiagnosticsId;

    /// <summary>
    /// True while an EventSource listener wants the trace points. Written by the event source's command callback (under
    /// the EventListener lock), read under a runtime's <see cref="_traceGate"/>.
    /// </summary>
    private static volatile bool s_tracePointsWanted;

    /// <summary>A process-unique id for this runtime, carried by its EventSource events so that runtimes can be told apart.</summary>
    internal readonly int DiagnosticsId = Interlocked.Increment(ref s_lastDiagnosticsId);

    /// <summary>Serializes the switches of <see cref="Cpu.Trace"/> (start, stop, listeners). Never taken by a CPU.</summary>
    private readonly object _traceGate = new();

    /// <summary>The capturing rings between <see cref="StartTrace"/> and <see cref="StopTrace"/>, else null (under <see cref="_traceGate"/>).</summary>
    private CpuTraceRing[]? _captureRings;

    /// <summary>When the current trace started (under <see cref="_traceGate"/>).</summary>
    private long _traceStart;

    /// <summary>Set once the runtime has stopped: no more forwarding rings (under <see cref="_traceGate"/>).</summary>
    private bool _diagnosticsStopped;

    /// <summary>This runtime's meter; created with the runtime, disposed when it stops.</summary>
    private RuntimeMetrics? _metrics;

    /// <summary>The stall watchdog, or null when <see cref="CpuRuntimeOptions.StallThreshold"/> turns it off; created with the runtime, disposed when it stops.</summary>
    private StallWatchdog? _stallWatchdog;

    /// <summary>The stall watchdog (tests drive it with <see cref="StallWatchdog.CheckNow()"/>), or null when it is off.</summary>
    internal StallWatchdog? StallWatchdog => _stallWatchdog;

    private static readonly EventHandler<CpuWarningEventArgs> s_forwardWarning = static (sender, e) =>
    {
        PerCpuEventSource log = PerCpuEventSource.Log;
        if (log.IsEnabled()) log.Warning(((CpuRuntime)sender!).DiagnosticsId, e.Cpu.Id, e.Message);
    };

    private static readonly EventHandler<CpuExceptionEventArgs> s_forwardException = static (sender, e) =>
    {
        PerCpuEventSource log = PerCpuEventSource.Log;
        if (log.IsEnabled())
            log.UnhandledException(((CpuRuntime)sender!).DiagnosticsId, e.Cpu.Id, e.SourceCpu, e.Exception.GetType().FullName ?? "", e.Exception.Message);
    };

    /// <summary>True between <see cref="StartTrace"/> and <see cref="StopTrace"/>.</summary>
    public bool IsTracing => Volatile.Read(ref _captureRings) != null;

    /// <summary>
    /// Starts recording every CPU's trace points (the seed's KTR points: <c>send_norm</c>, <c>receive</c>,
    /// <c>cpu_send</c>, ...) into a ring per CPU that keeps the newest <paramref name="eventsPerCpu"/> events. While no
    /// trace runs each trace point costs one predictable branch; while one runs, a timestamp and a few stores. Events
    /// recorded around the switch may be missing: a CPU sees the new ring at its next trace point.
    /// </summary>
    /// <param name="eventsPerCpu">Ring size per CPU: a power of two from 16 to 16777216; each event takes 48 bytes. Defaults to 65536.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="eventsPerCpu"/> is not such a power of two.</exception>
    /// <exception cref="InvalidOperationException">A trace is already running.</exception>
    /// <exception cref="ObjectDisposedException">The runtime is disposed: there is nothing left to trace.</exception>
    public void StartTrace(int eventsPerCpu = 65536)
    {
        if (eventsPerCpu < 16 || eventsPerCpu > MaxTraceEventsPerCpu || (eventsPerCpu & (eventsPerCpu - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(eventsPerCpu), eventsPerCpu,
                $"eventsPerCpu must be a power of two from 16 to {MaxTraceEventsPerCpu} (for example 65536): it is the size of each CPU's trace ring.");
        lock (_traceGate)
        {
            if (_shared.Disposing)
                throw new ObjectDisposedException(nameof(CpuRuntime), "The CpuRuntime is disposed (or being disposed): start tracing before you dispose it.");
            if (_captureRings != null)
                throw new InvalidOperationException("A trace is already running on this runtime: call StopTrace() to take it before starting another.");
            var rings = new CpuTraceRing[_cpus.Length];
            for (int i = 0; i < rings.Length; i++) rings[i] = new CpuTraceRing(DiagnosticsId, i, eventsPerCpu, forward: false);
            _traceStart = Stopwatch.GetTimestamp();
            Volatile.Write(ref _captureRings, rings);
            InstallTraceRingsLocked();
        }
    }

    /// <summary>
    /// Stops the trace started by <see cref="StartTrace"/> and returns what the rings hold: the newest events of each
    /// CPU, merged in time order. Safe on a running runtime (a CPU may record one more event into the ring as it is
    /// read; a half-written entry is dropped, never returned torn) and after disposal.
    /// </summary>
    /// <returns>The trace; write it with <see cref="CpuTrace.WriteChromeTrace"/>.</returns>
    /// <exception cref="InvalidOperationException">No trace is running.</exception>
    public CpuTrace StopTrace()
    {
        CpuTraceRing[] rings;
        long start, stop;
        lock (_traceGate)
        {
            rings = _captureRings ?? throw new InvalidOperationException("No trace is running on this runtime: call StartTrace() first.");
            stop = Stopwatch.GetTimestamp();
            start = _traceStart;
            Volatile.Write(ref _captureRings, null);
            InstallTraceRingsLocked();
        }
        return CpuTrace.Create(rings, start, stop);
    }

    /// <summary>
    /// Puts on each CPU the ring it should have now: the capturing ring while a trace runs, else a forward-only ring
    /// while an EventSource listener wants trace points, else none (null: the one-branch fast path). Under <see cref="_traceGate"/>.
    /// </summary>
    private void InstallTraceRingsLocked()
    {
        bool forward = s_tracePointsWanted && !_diagnosticsStopped;
        CpuTraceRing[]? capture = _captureRings;
        for (int i = 0; i < _cpus.Length; i++)
        {
            CpuTraceRing? ring = capture?[i];
            if (ring == null && forward)
                ring = _cpus[i].Trace is { Captures: false } current ? current : new CpuTraceRing(DiagnosticsId, i, 0, forward: true);
            if (ring != null) ring.Forward = forward;
            // Release: a new ring is fully built before its CPU, which reads the field with a plain load, can see it.
            Volatile.Write(ref _cpus[i].Trace, ring);
        }
    }

    /// <summary>Called by <see cref="PerCpuEventSource"/> when its listeners change (under the EventListener lock).</summary>
    internal static void OnTracePointListenersChanged(bool wanted)
    {
        s_tracePointsWanted = wanted;
        CpuRuntime[] live;
        lock (s_live) live = [.. s_live];
        foreach (CpuRuntime runtime in live)
            lock (runtime._traceGate) runtime.InstallTraceRingsLocked();
    }

    /// <summary>The factory the meter comes from (<see cref="CpuRuntimeOptions.MeterFactory"/>), or null.</summary>
    internal System.Diagnostics.Metrics.IMeterFactory? MeterFactory => _shared.Options.MeterFactory;

    /// <summary>The meter of this runtime (tests tell it from other runtimes' meters of the same name).</summary>
    internal Meter Meter => _metrics!.Meter;

    /// <summary>Counters of sends from threads that are not CPUs, since the last <see cref="ResetStatistics"/>.</summary>
    internal CpuStatistics GetExternalStatistics() => _shared.External.Snapshot() - _shared.Baseline(_cpus.Length);

    /// <summary>Called once by the constructor: the meter, the event source's view of this runtime.</summary>
    private void InitializeDiagnostics()
    {
        // Touch the event source before taking any lock: its construction may call back into OnTracePointListenersChanged.
        PerCpuEventSource log = PerCpuEventSource.Log;
        _metrics = new RuntimeMetrics(this);
        _shared.Metrics = _metrics;
        _stallWatchdog = StallWatchdog.Start(this); // its timer looks at CPUs that are not started yet as idle
        Warning += s_forwardWarning;
        UnhandledException += s_forwardException;
        lock (s_live) s_live.Add(this);
        lock (_traceGate) InstallTraceRingsLocked(); // a listener may already want the trace points
        log.RuntimeStarted(DiagnosticsId, _cpus.Length);
    }

    /// <summary>Called once when disposal has stopped the CPUs: the meter stops reporting. A running trace can still be taken.</summary>
    private void ShutdownDiagnostics()
    {
        lock (s_live) s_live.Remove(this);
        _stallWatchdog?.Dispose(); // the CPUs have stopped: nothing left to watch
        _metrics?.Dispose();
        lock (_traceGate)
        {
            _diagnosticsStopped = true;
            InstallTraceRingsLocked();
        }
        PerCpuEventSource.Log.RuntimeStopped(DiagnosticsId);
    }
}
