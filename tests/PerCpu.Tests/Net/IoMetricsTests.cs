using System.Diagnostics.Metrics;
using System.Net.Sockets;
using PerCpu.Diagnostics;
using PerCpu.Net;
using PerCpu.Tests.Io;
using static PerCpu.Tests.Net.NetTestUtil;

namespace PerCpu.Tests.Net;

/// <summary>Issue 12: statistics and metrics for sockets and timers (percpu.io.*, percpu.timer.*).</summary>
public sealed class IoMetricsTests
{
    [EpollFact]
    public async Task EchoAndATimer_ShowInIoStatistics_AndInTheMeter()
    {
        await using var runtime = TestUtil.Start(2);
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, Echo(new EchoStats()), new CpuListenerOptions { Cpus = CpuMask.Of(1) });
        using (Socket client = await ConnectAsync(listener.LocalEndPoint))
        {
            await client.SendAsync(new byte[100], SocketFlags.None);
            await ReadExactlyAsync(client, new byte[100]).WithHangDetector();
        }
        await Progress.Until(() => runtime[1].GetIoStatistics().ConnectionsClosed == 1, () => runtime[1].GetIoStatistics().BytesSent, "the connection to close");
        await runtime[0].InvokeAsync(() => runtime[0].Delay(TimeSpan.FromMilliseconds(1))).AsTask().WithHangDetector();

        CpuIoStatistics cpu1 = runtime[1].GetIoStatistics();
        Assert.Equal(1, cpu1.ConnectionsAccepted);
        Assert.Equal(0, cpu1.ConnectionsOpen);
        Assert.Equal(100, cpu1.BytesReceived);
        Assert.Equal(100, cpu1.BytesSent);
        Assert.Equal(1, runtime[0].GetIoStatistics().TimersFired);
        Assert.Equal(0, runtime[0].GetIoStatistics().TimersArmed);
        Assert.Equal(cpu1.BytesSent, runtime.GetIoStatistics().BytesSent);

        var seen = new Dictionary<string, long>();
        var instruments = new List<Instrument>();
        using var meterListener = new MeterListener();
        meterListener.InstrumentPublished = (instrument, l) =>
        {
            // This runtime's meter only: runtimes of tests running beside this one publish meters of the same name.
            if (instrument.Meter == runtime.Meter
                && (instrument.Name.StartsWith("percpu.io.", StringComparison.Ordinal) || instrument.Name.StartsWith("percpu.timer.", StringComparison.Ordinal)))
            {
                instruments.Add(instrument);
                l.EnableMeasurementEvents(instrument);
            }
        };
        meterListener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string key = instrument.Name;
            foreach (KeyValuePair<string, object?> tag in tags)
                if (tag.Key == "network.io.direction") key += "/" + tag.Value;
            lock (seen) seen[key] = seen.GetValueOrDefault(key) + value;
        });
        meterListener.Start();
        meterListener.RecordObservableInstruments();
        Assert.True(seen.Count > 0, "no percpu.io/percpu.timer instrument was published");
        Assert.All(instruments, i =>
        {
            Assert.False(string.IsNullOrEmpty(i.Unit), i.Name);
            Assert.False(string.IsNullOrEmpty(i.Description), i.Name);
            Assert.False(i.Name.EndsWith(".count", StringComparison.Ordinal), i.Name); // OpenTelemetry: plural nouns, no ".count"
        });
        Assert.Equal(1, seen["percpu.io.connections.accepted"]);
        Assert.Equal(1, seen["percpu.io.connections.closed"]);
        Assert.Equal(100, seen["percpu.io.bytes/receive"]);
        Assert.Equal(100, seen["percpu.io.bytes/transmit"]);
        Assert.Equal(1, seen["percpu.timer.fired"]);
    }

    [EpollFact]
    public async Task Trace_RecordsReadinessAndCompletions()
    {
        await using var runtime = TestUtil.Start(2);
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, Echo(new EchoStats()), new CpuListenerOptions { Cpus = CpuMask.Of(0) });
        runtime.StartTrace();
        using (Socket client = await ConnectAsync(listener.LocalEndPoint))
        {
            for (int i = 0; i < 10; i++)
            {
                await client.SendAsync(new byte[7], SocketFlags.None);
                await ReadExactlyAsync(client, new byte[7]).WithHangDetector();
            }
        }
        await Progress.Until(() => runtime[0].GetIoStatistics().ConnectionsClosed == 1, () => runtime[0].GetIoStatistics().BytesSent, "the connection to close");
        CpuTrace trace = runtime.StopTrace();
        Assert.Contains(trace.Events, e => e.Name == "io_ready" && e.Cpu == 0);
        Assert.Contains(trace.Events, e => e.Name == "io_receive" && e.Cpu == 0 && e.Argument == 7);
        Assert.Contains(trace.Events, e => e.Name == "io_receive" && e.Cpu == 0 && e.Argument == 0); // end of stream
    }
}
