using System.Diagnostics.Metrics;

namespace PerCpu.Diagnostics;

// Socket and timer instruments (issue 12), over Cpu.GetIoStatistics. OpenTelemetry naming: monotonic counters are
// plural nouns or bytes with a unit; one instrument per quantity with an attribute for the direction
// (network.io.direction, as the semantic conventions' *.network.io instruments); the CPU as percpu.cpu.id.
internal sealed partial class RuntimeMetrics
{
    private KeyValuePair<string, object?>[] _ioCpuTags = [];

    private static readonly KeyValuePair<string, object?> s_receive = new("network.io.direction", "receive");
    private static readonly KeyValuePair<string, object?> s_transmit = new("network.io.direction", "transmit");

    private void RegisterIo()
    {
        _ioCpuTags = new KeyValuePair<string, object?>[_runtime.CpuCount];
        for (int i = 0; i < _ioCpuTags.Length; i++) _ioCpuTags[i] = new(CpuIdAttribute, i);

        IoCounter("percpu.io.connections.accepted", "{connection}", "Connections accepted by listeners, per owning CPU.", static s => s.ConnectionsAccepted);
        IoCounter("percpu.io.connections.opened", "{connection}", "Outbound connections established by each CPU.", static s => s.ConnectionsOpened);
        IoCounter("percpu.io.connections.closed", "{connection}", "Connections closed on each CPU.", static s => s.ConnectionsClosed);
        Meter.CreateObservableUpDownCounter("percpu.io.connections.active", () => ObserveIo(static s => s.ConnectionsOpen), "{connection}",
            "Connections open on each CPU now.");
        Meter.CreateObservableCounter("percpu.io.bytes", () => ObserveIo(static s => s.BytesReceived, static s => s.BytesSent), "By",
            "Bytes received and sent by each CPU's connections (network.io.direction: receive, transmit).");
        Meter.CreateObservableCounter("percpu.io.waits", () => ObserveIo(static s => s.ReceiveWaits, static s => s.SendWaits), "{operation}",
            "Receives that waited for data and sends that waited for the peer to read (backpressure), per direction.");
        IoCounter("percpu.io.handler.errors", "{exception}", "Connection handlers that threw; the connection was closed and the CPU went on.", static s => s.HandlerErrors);
        IoCounter("percpu.timer.fired", "{timer}", "Timer callouts fired by each CPU's softclock (CpuTimer, Cpu.Delay).", static s => s.TimersFired);
        Meter.CreateObservableUpDownCounter("percpu.timer.armed", () => ObserveIo(static s => s.TimersArmed), "{timer}", "Timers armed on each CPU now.");
    }

    private void IoCounter(string name, string unit, string description, Func<CpuIoStatistics, long> field)
        => Meter.CreateObservableCounter(name, () => ObserveIo(field), unit, description);

    private IEnumerable<Measurement<long>> ObserveIo(Func<CpuIoStatistics, long> field)
    {
        if (_stopped) return [];
        IReadOnlyList<Cpu> cpus = _runtime.Cpus;
        var measurements = new Measurement<long>[cpus.Count];
        for (int i = 0; i < cpus.Count; i++) measurements[i] = new Measurement<long>(field(cpus[i].GetIoStatistics()), _ioCpuTags[i]);
        return measurements;
    }

    private IEnumerable<Measurement<long>> ObserveIo(Func<CpuIoStatistics, long> receive, Func<CpuIoStatistics, long> transmit)
    {
        if (_stopped) return [];
        IReadOnlyList<Cpu> cpus = _runtime.Cpus;
        var measurements = new Measurement<long>[cpus.Count * 2];
        for (int i = 0; i < cpus.Count; i++)
        {
            CpuIoStatistics s = cpus[i].GetIoStatistics();
            measurements[2 * i] = new Measurement<long>(receive(s), _ioCpuTags[i], s_receive);
            measurements[2 * i + 1] = new Measurement<long>(transmit(s), _ioCpuTags[i], s_transmit);
        }
        return measurements;
    }
}
