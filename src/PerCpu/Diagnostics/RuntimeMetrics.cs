using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace PerCpu.Diagnostics;

/// <summary>
/// The <c>PerCpu</c> meter of one runtime, named after OpenTelemetry's conventions: monotonic counters over the per-CPU
/// statistics (the seed's <c>ipiq_*</c> sysctls, NetBSD's <c>si_evcnt</c>), histograms of how long waits and soft
/// interrupt handlers take, and gauges of the inboxes. Read by <c>dotnet-counters monitor --counters PerCpu</c> and
/// OpenTelemetry's <c>AddMeter("PerCpu")</c> with no code from the user; the list is in docs/diagnostics.md.
/// <para>
/// One meter per runtime, created with the runtime and disposed when it has stopped (as ASP.NET Core creates one
/// <c>Microsoft.AspNetCore.Server.Kestrel</c> meter per host): a disposed runtime's instruments stop reporting, and two
/// runtimes in one process are two meters of the same name, which listeners aggregate.
/// </para>
/// <para>
/// Counters report running totals since the runtime started, never what <see cref="CpuRuntime.ResetStatistics"/>
/// subtracts: a reset is a baseline for <see cref="CpuRuntime.GetStatistics"/> only, and a published counter never goes
/// backwards (an exporter would read it as a restart).
/// </para>
/// <para>
/// Attributes: <c>percpu.cpu.id</c>, the CPU (the sender for send counters, the receiver for receive counters, the
/// waiter for waits); calls from threads that are not CPUs carry <c>percpu.sender</c> = <c>outside</c> instead.
/// Soft interrupt instruments add <c>percpu.softint.level</c> (<c>serial</c>, <c>net</c>, <c>bio</c>, <c>clock</c>); the
/// wait histogram adds <c>percpu.wait.reason</c>.
/// </para>
/// </summary>
internal sealed partial class RuntimeMetrics : IDisposable
{
    /// <summary>Attribute: the CPU id.</summary>
    internal const string CpuIdAttribute = "percpu.cpu.id";

    /// <summary>Attribute on measurements of calls from threads that are not CPUs, with the value <see cref="OutsideSender"/>.</summary>
    internal const string SenderAttribute = "percpu.sender";

    /// <summary>The value of <see cref="SenderAttribute"/>.</summary>
    internal const string OutsideSender = "outside";

    /// <summary>Attribute: the soft interrupt level, lowercase.</summary>
    internal const string LevelAttribute = "percpu.softint.level";

    /// <summary>Attribute: what a wait was for (<see cref="WaitKind"/>, snake case).</summary>
    internal const string WaitReasonAttribute = "percpu.wait.reason";

    /// <summary>What the wait histogram's measurements waited for (the values of <see cref="WaitReasonAttribute"/>).</summary>
    internal enum WaitKind
    {
        /// <summary><c>ring_room</c>: a CPU's send waited for room in its ring to another CPU.</summary>
        RingRoom,
        /// <summary><c>sequence</c>: a CPU's <see cref="Cpu.WaitFor(long)"/> or <see cref="CpuRuntime.Synchronize"/>.</summary>
        Sequence,
        /// <summary><c>inbox_room</c>: a call from outside waited for room in a CPU's inbox (blocking, or as a pending InvokeAsync).</summary>
        InboxRoom,
        /// <summary><c>inbox_sequence</c>: a WaitFor (or WaitForAsync) from outside.</summary>
        InboxSequence,
        /// <summary><c>other</c>: cpusync acknowledgements and releases, soft interrupt disestablishment.</summary>
        Other,
    }

    /// <summary>Bucket boundaries for durations, in seconds: 1 µs to 10 s (the default boundaries are for milliseconds).</summary>
    private static readonly double[] s_durationBuckets =
        [1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1, 2, 5, 10];

    private static readonly KeyValuePair<string, object?> s_outsideTag = new(SenderAttribute, OutsideSender);

    private static readonly KeyValuePair<string, object?>[] s_waitTags =
    [
        new(WaitReasonAttribute, "ring_room"), new(WaitReasonAttribute, "sequence"), new(WaitReasonAttribute, "inbox_room"),
        new(WaitReasonAttribute, "inbox_sequence"), new(WaitReasonAttribute, "other"),
    ];

    /// <summary>The soft interrupt levels and their attribute (lowercase names), by level value.</summary>
    private static readonly (SoftLevel Level, KeyValuePair<string, object?> Tag)[] s_levels =
    [
        (SoftLevel.Clock, new(LevelAttribute, "clock")), (SoftLevel.Bio, new(LevelAttribute, "bio")),
        (SoftLevel.Net, new(LevelAttribute, "net")), (SoftLevel.Serial, new(LevelAttribute, "serial")),
    ];

    private readonly CpuRuntime _runtime;

    /// <summary>One boxed <c>percpu.cpu.id</c> attribute per CPU, built once so that no measurement boxes.</summary>
    private readonly KeyValuePair<string, object?>[] _cpuTags;

    private readonly Histogram<double> _waitDuration;
    private readonly Histogram<double> _softIntDuration;

    /// <summary>The meter, named <see cref="CpuRuntime.DiagnosticsName"/>.</summary>
    public Meter Meter { get; }

    /// <summary>False when the meter came from an <see cref="IMeterFactory"/>, which disposes it.</summary>
    private readonly bool _ownsMeter;

    /// <summary>Set when the runtime has stopped: a factory's meter lives on, and its instruments then report nothing. Written once by the disposer, read by collections.</summary>
    private volatile bool _stopped;

    public RuntimeMetrics(CpuRuntime runtime)
    {
        Debug.Assert((int)SoftLevel.Clock == 0 && (int)SoftLevel.Serial == 3, "s_levels is indexed by level value");
        _runtime = runtime;
        _cpuTags = new KeyValuePair<string, object?>[runtime.CpuCount];
        for (int i = 0; i < runtime.CpuCount; i++) _cpuTags[i] = new(CpuIdAttribute, i);
        string? version = typeof(RuntimeMetrics).Assembly.GetName().Version?.ToString();
        IMeterFactory? factory = runtime.MeterFactory;
        // From a host's IMeterFactory (CpuRuntimeOptions.MeterFactory, set by PerCpu.Hosting): the factory owns the
        // meter and disposes it with the host; the runtime's id as a meter tag keeps two runtimes' meters apart (the
        // factory returns one shared meter for equal name, version and tags).
        _ownsMeter = factory is null;
        Meter = factory is null
            ? new Meter(CpuRuntime.DiagnosticsName, version)
            : factory.Create(new MeterOptions(CpuRuntime.DiagnosticsName) { Version = version, Tags = [new("percpu.runtime.id", runtime.DiagnosticsId)] });

        Counter("percpu.ipi.messages.sent", "{message}",
            "Messages sent by each CPU, to itself included (DragonFly ipiq_count), and by threads that are not CPUs (percpu.sender=outside); refused try-sends included.",
            static s => s.Sent, outside: true);
        Counter("percpu.ipi.messages.received", "{message}", "Messages each CPU has executed.", static s => s.Received, outside: false);
        Counter("percpu.ipi.full_waits", "{send}",
            "Sends that found the ring over half full (the inbox full, from outside) and waited (DragonFly ipiq_fifofull).",
            static s => s.FifoFull, outside: true);
        Counter("percpu.ipi.avoided_wakes", "{message}",
            "Messages that needed no wake-up because the target CPU was awake (ipiq_avoided).",
            static s => s.Avoided, outside: true);
        Counter("percpu.ipi.passive_sends", "{message}", "Passive sends: no wake-up, run at the target's next pass or tick (ipiq_passive).",
            static s => s.Passive, outside: true);
        Counter("percpu.ipi.failed_sends", "{message}", "TrySend calls refused because the ring was two-thirds full (the inbox full, from outside).",
            static s => s.SendFailed, outside: true);
        Counter("percpu.ipi.wakes.sent", "{wake}", "Wake-ups of parked CPUs issued by each CPU (the hardware IPI), and by threads that are not CPUs.",
            static s => s.WakesSent, outside: true);
        Counter("percpu.ipi.wakes.received", "{wake}", "Times each CPU was woken from a park by a sender (not by its tick).",
            static s => s.WakesReceived, outside: false);
        Counter("percpu.exceptions", "{exception}", "Exceptions thrown by functions, tasks or handlers on each CPU; the CPU went on.",
            static s => s.Errors, outside: false);
        Counter("percpu.cpusyncs", "{sync}", "CPU synchronizations (interlocks) mastered by each CPU (ipiq_cscount).",
            static s => s.CpuSyncs, outside: false);
        Counter("percpu.stalls", "{stall}",
            "Stalls reported by the stall watchdog: a CPU kept from its dispatch loop longer than StallThreshold, or parked with undrained work and woken again.",
            static s => s.Stalls, outside: false);

        SoftCounter("percpu.softint.runs", "{run}", "Soft interrupt handler runs started on each CPU at each level (NetBSD si_evcnt).",
            static s => s.Count);
        SoftCounter("percpu.softint.blocks", "{block}",
            "Runs of an asynchronous soft interrupt handler that did not complete at once, holding their level (si_evcnt_block).",
            static s => s.Blocks);

        var durationAdvice = new InstrumentAdvice<double> { HistogramBucketBoundaries = s_durationBuckets };
        _waitDuration = Meter.CreateHistogram("percpu.wait.duration", "s",
            "How long a wait that did wait took: a send for ring or inbox room, WaitFor, Synchronize, a cpusync. Only waits that found the condition unmet are recorded.",
            tags: null, advice: durationAdvice);
        _softIntDuration = Meter.CreateHistogram("percpu.softint.duration", "s",
            "How long each soft interrupt handler ran, until it returned the first time. Recorded only with CpuRuntimeOptions.SoftInterruptTiming on.",
            tags: null, advice: durationAdvice);

        Meter.CreateObservableGauge("percpu.inbox.depth", ObserveInboxDepth, "{message}",
            "Messages from threads that are not CPUs waiting in each CPU's inbox (it holds at most InboxCapacity).");
        Meter.CreateObservableGauge("percpu.inbox.waiting_calls", ObserveInboxWaiters, "{call}",
            "Asynchronous calls from threads that are not CPUs waiting for room in each CPU's full inbox, and WaitForAsync calls waiting on it.");

        RegisterIo(); // RuntimeMetrics.Io.cs: percpu.io.*, percpu.timer.*
    }

    /// <summary>
    /// A wait that did wait has ended: <paramref name="waiterCpu"/> (or <see cref="Cpu.ExternalSource"/>) waited for
    /// <paramref name="kind"/> since <paramref name="startTimestamp"/> (<see cref="Stopwatch"/>). Boxes and allocates
    /// nothing; costs one branch while no listener listens.
    /// </summary>
    internal void RecordWait(int waiterCpu, WaitKind kind, long startTimestamp)
    {
        if (!_waitDuration.Enabled) return;
        _waitDuration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds, waiterCpu < 0 ? s_outsideTag : _cpuTags[waiterCpu], s_waitTags[(int)kind]);
    }

    /// <summary>A soft interrupt handler at <paramref name="level"/> ran for <paramref name="ticks"/> (<see cref="Stopwatch"/>) on <paramref name="cpu"/>.</summary>
    internal void RecordSoftInterrupt(int cpu, SoftLevel level, long ticks)
    {
        if (!_softIntDuration.Enabled) return;
        _softIntDuration.Record((double)ticks / Stopwatch.Frequency, _cpuTags[cpu], s_levels[(int)level].Tag);
    }

    private void SoftCounter(string name, string unit, string description, Func<SoftInterruptStatistics, long> field)
        => Meter.CreateObservableCounter<long>(name, () => ObserveSoft(field), unit, description);

    private IEnumerable<Measurement<long>> ObserveSoft(Func<SoftInterruptStatistics, long> field)
    {
        if (_stopped) return [];
        IReadOnlyList<Cpu> cpus = _runtime.Cpus;
        var measurements = new Measurement<long>[cpus.Count * s_levels.Length];
        int m = 0;
        for (int i = 0; i < cpus.Count; i++)
            for (int l = s_levels.Length - 1; l >= 0; l--) // highest priority first
                measurements[m++] = new Measurement<long>(field(cpus[i].GetSoftInterruptTotals(s_levels[l].Level)), _cpuTags[i], s_levels[l].Tag);
        return measurements;
    }

    private void Counter(string name, string unit, string description, Func<CpuStatistics, long> field, bool outside)
        => Meter.CreateObservableCounter<long>(name, () => Observe(field, outside), unit, description);

    private IEnumerable<Measurement<long>> Observe(Func<CpuStatistics, long> field, bool outside)
    {
        if (_stopped) return [];
        IReadOnlyList<Cpu> cpus = _runtime.Cpus;
        var measurements = new Measurement<long>[cpus.Count + (outside ? 1 : 0)];
        for (int i = 0; i < cpus.Count; i++) measurements[i] = new Measurement<long>(field(cpus[i].Counters.Snapshot()), _cpuTags[i]);
        if (outside) measurements[cpus.Count] = new Measurement<long>(field(_runtime.Internals.External.Snapshot()), s_outsideTag);
        return measurements;
    }

    private IEnumerable<Measurement<long>> ObserveInboxDepth()
    {
        if (_stopped) return [];
        IReadOnlyList<Cpu> cpus = _runtime.Cpus;
        var measurements = new Measurement<long>[cpus.Count];
        for (int i = 0; i < cpus.Count; i++) measurements[i] = new Measurement<long>(cpus[i].Inbox.Depth, _cpuTags[i]);
        return measurements;
    }

    private IEnumerable<Measurement<long>> ObserveInboxWaiters()
    {
        if (_stopped) return [];
        IReadOnlyList<Cpu> cpus = _runtime.Cpus;
        var measurements = new Measurement<long>[cpus.Count];
        for (int i = 0; i < cpus.Count; i++) measurements[i] = new Measurement<long>(cpus[i].Inbox.OutsideWaiters, _cpuTags[i]);
        return measurements;
    }

    public void Dispose()
    {
        _stopped = true;
        if (_ownsMeter) Meter.Dispose();
    }
}
