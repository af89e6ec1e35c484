using System.Diagnostics.Metrics;

namespace PerCpu.Diagnostics;

/// <summary>
/// The <c>PerCpu</c> meter of one runtime: observable counters over the per-CPU statistics (the seed's <c>ipiq_*</c>
/// sysctls), read by <c>dotnet-counters monitor --counters PerCpu</c> and OpenTelemetry's <c>AddMeter("PerCpu")</c>
/// with no code from the user.
/// <para>
/// One meter per runtime, created with the runtime and disposed when it has stopped (as ASP.NET Core creates one
/// <c>Microsoft.AspNetCore.Server.Kestrel</c> meter per host through <c>IMeterFactory</c>): a disposed runtime's
/// instruments stop reporting, and two runtimes in one process are two meters of the same name, which listeners
/// aggregate. Nothing is counted here: the callbacks read <see cref="Cpu.GetStatistics"/>, so the instruments report
/// exactly what the statistics API does, including its reset by <see cref="CpuRuntime.ResetStatistics"/> (a counter
/// reset to the exporters).
/// </para>
/// Tag <c>cpu</c>: the CPU id, or -1 for calls from threads that are not CPUs (the runtime's external counters, on the
/// instruments those calls count). Soft interrupt instruments (<c>percpu.softint.count</c>, <c>percpu.softint.blocks</c>)
/// add the tag <c>level</c>: <c>serial</c>, <c>net</c>, <c>bio</c> or <c>clock</c>.
/// </summary>
internal sealed partial class RuntimeMetrics : IDisposable
{
    /// <summary>Tag value for sends from threads that are not CPUs.</summary>
    internal const int ExternalCpu = -1;

    private readonly CpuRuntime _runtime;

    /// <summary>One boxed <c>cpu</c> tag per CPU (index CpuCount: external), built once so that a collection boxes nothing.</summary>
    private readonly KeyValuePair<string, object?>[] _cpuTags;

    /// <summary>The meter, named <see cref="CpuRuntime.DiagnosticsName"/>.</summary>
    public Meter Meter { get; }

    public RuntimeMetrics(CpuRuntime runtime)
    {
        _runtime = runtime;
        _cpuTags = new KeyValuePair<string, object?>[runtime.CpuCount + 1];
        for (int i = 0; i < runtime.CpuCount; i++) _cpuTags[i] = new("cpu", i);
        _cpuTags[runtime.CpuCount] = new("cpu", ExternalCpu);
        Meter = new Meter(CpuRuntime.DiagnosticsName, typeof(RuntimeMetrics).Assembly.GetName().Version?.ToString());

        Counter("percpu.ipi.sent", "{message}",
            "Messages sent by each CPU, to itself included (DragonFly ipiq_count); cpu=-1: sends from threads that are not CPUs.",
            static s => s.Sent, external: true);
        Counter("percpu.ipi.received", "{message}", "Messages each CPU has executed.", static s => s.Received, external: false);
        Counter("percpu.ipi.fifo_full", "{send}",
            "Sends that found the ring over half full and waited, draining the sender's own queue (ipiq_fifofull).",
            static s => s.FifoFull, external: true);
        Counter("percpu.ipi.wakes_avoided", "{message}",
            "Messages that needed no wake-up because the target CPU was awake (ipiq_avoided).",
            static s => s.Avoided, external: true);
        Counter("percpu.ipi.passive", "{message}", "Passive sends: no wake-up, run at the target's next pass or tick (ipiq_passive).",
            static s => s.Passive, external: true);
        Counter("percpu.ipi.send_failed", "{message}", "TrySend calls refused because the ring was two-thirds full.",
            static s => s.SendFailed, external: true);
        Counter("percpu.ipi.wakes_sent", "{wake}", "Wake-ups of parked CPUs issued by each CPU (the hardware IPI).",
            static s => s.WakesSent, external: true);
        Counter("percpu.ipi.wakes_received", "{wake}", "Times each CPU was woken from a park by a sender (not by its tick).",
            static s => s.WakesReceived, external: false);
        Counter("percpu.errors", "{exception}", "Exceptions thrown by functions, tasks or handlers on each CPU; the CPU went on.",
            static s => s.Errors, external: false);
        Counter("percpu.cpusync.count", "{sync}", "CPU synchronizations (interlocks) mastered by each CPU (ipiq_cscount).",
            static s => s.CpuSyncs, external: false);
        Counter("percpu.stalls", "{stall}",
            "Stalls reported by the stall watchdog: a CPU kept from its dispatch loop longer than StallThreshold, or parked with undrained work and woken again.",
            static s => s.Stalls, external: false);

        SoftCounter("percpu.softint.count", "{run}", "Soft interrupt handler runs started on each CPU at each level (NetBSD si_evcnt).",
            static s => s.Count);
        SoftCounter("percpu.softint.blocks", "{block}",
            "Runs of an asynchronous soft interrupt handler that did not complete at once, holding their level (si_evcnt_block).",
            static s => s.Blocks);
        RegisterIo(); // RuntimeMetrics.Io.cs
    }

    /// <summary>The soft interrupt levels and their <c>level</c> tag values (lowercase names), highest priority first.</summary>
    private static readonly (SoftLevel Level, string Name)[] s_levels =
        [(SoftLevel.Serial, "serial"), (SoftLevel.Net, "net"), (SoftLevel.Bio, "bio"), (SoftLevel.Clock, "clock")];

    private void SoftCounter(string name, string unit, string description, Func<SoftInterruptStatistics, long> field)
        => Meter.CreateObservableCounter<long>(name, () => ObserveSoft(field), unit, description);

    private IEnumerable<Measurement<long>> ObserveSoft(Func<SoftInterruptStatistics, long> field)
    {
        IReadOnlyList<Cpu> cpus = _runtime.Cpus;
        var measurements = new Measurement<long>[cpus.Count * s_levels.Length];
        int m = 0;
        for (int i = 0; i < cpus.Count; i++)
            foreach ((SoftLevel level, string levelName) in s_levels)
                measurements[m++] = new Measurement<long>(field(cpus[i].GetSoftInterruptStatistics(level)), _cpuTags[i], new("level", levelName));
        return measurements;
    }

    private void Counter(string name, string unit, string description, Func<CpuStatistics, long> field, bool external)
        => Meter.CreateObservableCounter<long>(name, () => Observe(field, external), unit, description);

    private IEnumerable<Measurement<long>> Observe(Func<CpuStatistics, long> field, bool external)
    {
        IReadOnlyList<Cpu> cpus = _runtime.Cpus;
        var measurements = new Measurement<long>[cpus.Count + (external ? 1 : 0)];
        for (int i = 0; i < cpus.Count; i++) measurements[i] = new Measurement<long>(field(cpus[i].GetStatistics()), _cpuTags[i]);
        if (external) measurements[cpus.Count] = new Measurement<long>(field(_runtime.GetExternalStatistics()), _cpuTags[cpus.Count]);
        return measurements;
    }

    public void Dispose() => Meter.Dispose();
}
