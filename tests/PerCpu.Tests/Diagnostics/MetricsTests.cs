using System.Diagnostics.Metrics;

namespace PerCpu.Tests.Diagnostics;

public sealed class MetricsTests
{
    /// <summary>Every instrument of the meter and the statistics field it must report.</summary>
    private static readonly Dictionary<string, Func<CpuStatistics, long>> s_fields = new()
    {
        ["percpu.ipi.sent"] = s => s.Sent,
        ["percpu.ipi.received"] = s => s.Received,
        ["percpu.ipi.fifo_full"] = s => s.FifoFull,
        ["percpu.ipi.wakes_avoided"] = s => s.Avoided,
        ["percpu.ipi.passive"] = s => s.Passive,
        ["percpu.ipi.send_failed"] = s => s.SendFailed,
        ["percpu.ipi.wakes_sent"] = s => s.WakesSent,
        ["percpu.ipi.wakes_received"] = s => s.WakesReceived,
        ["percpu.errors"] = s => s.Errors,
        ["percpu.cpusync.count"] = s => s.CpuSyncs,
        ["percpu.stalls"] = s => s.Stalls,
    };

    /// <summary>The soft interrupt instruments (tags cpu and level) and the field each reports.</summary>
    private static readonly Dictionary<string, Func<SoftInterruptStatistics, long>> s_softFields = new()
    {
        ["percpu.softint.count"] = s => s.Count,
        ["percpu.softint.blocks"] = s => s.Blocks,
    };

    private static IEnumerable<string> AllInstruments => s_fields.Keys.Concat(s_softFields.Keys).Order();

    /// <summary>Listens to one runtime's meter only (other tests' runtimes publish meters of the same name).</summary>
    internal sealed class Recorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        public readonly List<(string Instrument, int Cpu, long Value)> Measurements = [];
        public readonly List<(string Instrument, int Cpu, string Level, long Value)> SoftMeasurements = [];
        public readonly HashSet<string> Published = [];
        public readonly HashSet<string> Completed = [];
        private readonly object _gate = new();

        public Recorder(CpuRuntime runtime)
        {
            Meter meter = runtime.Meter;
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (!ReferenceEquals(instrument.Meter, meter)) return;
                lock (_gate) Published.Add(instrument.Name);
                listener.EnableMeasurementEvents(instrument);
            };
            _listener.MeasurementsCompleted = (instrument, _) =>
            {
                lock (_gate) Completed.Add(instrument.Name);
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            {
                int cpu = int.MinValue;
                string? level = null;
                foreach (KeyValuePair<string, object?> tag in tags)
                {
                    if (tag.Key == "cpu") cpu = (int)tag.Value!;
                    else if (tag.Key == "level") level = (string)tag.Value!;
                }
                lock (_gate)
                {
                    if (level != null) SoftMeasurements.Add((instrument.Name, cpu, level, value));
                    else Measurements.Add((instrument.Name, cpu, value));
                }
            });
            _listener.Start();
        }

        public List<(string Instrument, int Cpu, long Value)> Collect()
        {
            lock (_gate)
            {
                Measurements.Clear();
                SoftMeasurements.Clear();
            }
            _listener.RecordObservableInstruments();
            lock (_gate) return [.. Measurements];
        }

        /// <summary>The soft interrupt measurements of the last <see cref="Collect"/>.</summary>
        public List<(string Instrument, int Cpu, string Level, long Value)> Soft()
        {
            lock (_gate) return [.. SoftMeasurements];
        }

        public void Dispose() => _listener.Dispose();
    }

    /// <summary>Asserts that every instrument reports, for every CPU and for outside threads, what the statistics API says.</summary>
    internal static void AssertMeterMatchesStatistics(CpuRuntime runtime, List<(string Instrument, int Cpu, long Value)> measured)
    {
        CpuStatistics total = runtime.GetStatistics();
        CpuStatistics external = runtime.GetExternalStatistics();
        foreach ((string name, Func<CpuStatistics, long> field) in s_fields)
        {
            var mine = measured.Where(m => m.Instrument == name).ToList();
            for (int cpu = 0; cpu < runtime.CpuCount; cpu++)
                Assert.Equal((name, cpu, field(runtime[cpu].GetStatistics())), mine.Single(m => m.Cpu == cpu));
            long externalValue = mine.Where(m => m.Cpu == -1).Sum(m => m.Value);
            Assert.Equal((name, field(external)), (name, externalValue));
            Assert.Equal((name, field(total)), (name, mine.Sum(m => m.Value)));
            Assert.All(mine, m => Assert.InRange(m.Cpu, -1, runtime.CpuCount - 1));
        }
    }

    /// <summary>Asserts that the soft interrupt instruments report, per CPU and level, what the statistics API says.</summary>
    internal static void AssertSoftMeterMatchesStatistics(CpuRuntime runtime, List<(string Instrument, int Cpu, string Level, long Value)> measured)
    {
        foreach ((string name, Func<SoftInterruptStatistics, long> field) in s_softFields)
        {
            var mine = measured.Where(m => m.Instrument == name).ToList();
            Assert.Equal(runtime.CpuCount * 4, mine.Count);
            for (int cpu = 0; cpu < runtime.CpuCount; cpu++)
                foreach (SoftLevel level in Enum.GetValues<SoftLevel>())
                    Assert.Equal((name, cpu, level.ToString().ToLowerInvariant(), field(runtime[cpu].GetSoftInterruptStatistics(level))),
                        mine.Single(m => m.Cpu == cpu && m.Level == level.ToString().ToLowerInvariant()));
        }
    }

    internal static readonly Action<object?, long> s_noop = static (_, _) => { };

    [Fact]
    public async Task Meter_ReportsTheStatistics_ForAKnownExchange()
    {
        await using var runtime = CpuRuntime.StartManual(new CpuRuntimeOptions { CpuCount = 2, FifoCapacity = 16 });
        using var recorder = new Recorder(runtime);
        Assert.Equal(AllInstruments, recorder.Published.Order());

        // From outside into CPU 0; there, a normal send, a passive one, try-sends until one is refused (16-slot ring,
        // CPU 1 not running), and a function that throws; then CPU 1 runs what it got.
        runtime[0].Send(static (state, _) =>
        {
            Cpu target = ((CpuRuntime)state!)[1];
            target.Send(s_noop);
            target.SendPassive(s_noop);
            target.Send(static (_, _) => throw new InvalidOperationException("counted, not fatal"));
            while (target.TrySend(s_noop)) { }
        }, runtime);
        runtime[0].RunOnce();
        runtime[1].RunOnce();

        List<(string Instrument, int Cpu, long Value)> measured = recorder.Collect();
        AssertMeterMatchesStatistics(runtime, measured);
        // Not vacuous: the exchange moved these, on these CPUs.
        Assert.Contains(("percpu.ipi.sent", -1, 1L), measured);
        Assert.Contains(("percpu.ipi.passive", 0, 1L), measured);
        Assert.Contains(("percpu.ipi.send_failed", 0, 1L), measured);
        Assert.Contains(("percpu.ipi.received", 0, 1L), measured);
        Assert.Contains(("percpu.ipi.received", 1, 10L), measured); // send, passive, the thrower, 7 try-sends (ring at 10 of 16)
        Assert.Contains(("percpu.errors", 1, 1L), measured);
        Assert.Contains(("percpu.ipi.sent", 0, 11L), measured); // the refused try-send counts as sent, like ipiq_count
    }

    [Fact]
    public async Task Meter_ReportsSoftInterruptStatistics_PerCpuAndLevel()
    {
        await using var runtime = TestUtil.Start(2);
        using var recorder = new Recorder(runtime);
        SoftInterrupt serial = runtime.Establish(SoftLevel.Serial, static _ => { });
        SoftInterrupt bio = runtime.Establish(SoftLevel.Bio, static async _ => await Task.Yield()); // never completes at once: a block
        await runtime[1].InvokeAsync(() =>
        {
            serial.Schedule();
            bio.Schedule();
        }).AsTask().WithHangDetector();
        await runtime[0].InvokeAsync(() => bio.Schedule()).AsTask().WithHangDetector();
        await WaitUntilQuiescent(runtime);

        recorder.Collect();
        List<(string Instrument, int Cpu, string Level, long Value)> soft = recorder.Soft();
        AssertSoftMeterMatchesStatistics(runtime, soft);
        Assert.Contains(("percpu.softint.count", 1, "serial", 1L), soft);
        Assert.Contains(("percpu.softint.count", 1, "bio", 1L), soft);
        Assert.Contains(("percpu.softint.blocks", 1, "bio", 1L), soft);
        Assert.Contains(("percpu.softint.blocks", 0, "bio", 1L), soft);
        Assert.Contains(("percpu.softint.count", 0, "serial", 0L), soft);
    }

    /// <summary>
    /// Waits until everything accepted has run, so that no counter moves any more; fails only if the runtime is not
    /// quiescent and does nothing for a whole stall period.
    /// </summary>
    internal static async Task WaitUntilQuiescent(CpuRuntime runtime)
    {
        Func<long> activity = Progress.Of(runtime);
        await Progress.WaitUntil(() => runtime.IsQuiescent() ? long.MaxValue : activity(), long.MaxValue, what: "the runtime becomes quiescent");
    }

    [Fact]
    public async Task Meter_FollowsResetStatistics_LikeTheStatisticsApi()
    {
        await using var runtime = CpuRuntime.StartManual(new CpuRuntimeOptions { CpuCount = 2 });
        using var recorder = new Recorder(runtime);
        runtime[1].Send(s_noop);
        runtime[1].RunOnce();
        Assert.Contains(("percpu.ipi.received", 1, 1L), recorder.Collect());
        runtime.ResetStatistics();
        List<(string Instrument, int Cpu, long Value)> measured = recorder.Collect();
        AssertMeterMatchesStatistics(runtime, measured);
        Assert.All(measured, m => Assert.Equal(0, m.Value));
    }

    [Fact]
    public async Task Meter_StopsReporting_WhenTheRuntimeIsDisposed()
    {
        var runtime = CpuRuntime.StartManual(new CpuRuntimeOptions { CpuCount = 2 });
        using var recorder = new Recorder(runtime);
        Assert.NotEmpty(recorder.Collect());
        await runtime.DisposeAsync();
        Assert.Equal(AllInstruments, recorder.Completed.Order());
        Assert.Empty(recorder.Collect());
    }

    [Fact]
    public async Task Meter_IsNamedPerCpu_WithUnitsAndDescriptions()
    {
        await using var runtime = CpuRuntime.StartManual(new CpuRuntimeOptions { CpuCount = 2 });
        Assert.Equal("PerCpu", runtime.Meter.Name);
        Assert.Equal("PerCpu", CpuRuntime.DiagnosticsName);
        var instruments = new List<Instrument>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (ReferenceEquals(instrument.Meter, runtime.Meter)) instruments.Add(instrument);
            },
        };
        listener.Start();
        Assert.Equal(AllInstruments, instruments.Select(i => i.Name).Order());
        Assert.All(instruments, i =>
        {
            Assert.IsType<ObservableCounter<long>>(i);
            Assert.StartsWith("{", i.Unit);
            Assert.False(string.IsNullOrWhiteSpace(i.Description));
        });
    }
}

[Collection("Stress")]
public sealed class MetricsStressTests
{
    private static readonly Action<object?, long> s_noop = MetricsTests.s_noop;

    /// <summary>With threads, after a storm in both directions has fully run: the meter reads what the statistics read.</summary>
    [Fact]
    public async Task Meter_ReportsTheStatistics_AfterAStorm()
    {
        await using var runtime = TestUtil.Start(2, o => o.FifoCapacity = 64);
        using var recorder = new MetricsTests.Recorder(runtime);
        var storm = new Func<ValueTask>[2];
        for (int c = 0; c < 2; c++)
        {
            Cpu target = runtime[1 - c];
            storm[c] = () =>
            {
                long seq = 0;
                for (int i = 0; i < 50_000; i++)
                {
                    switch (i % 3)
                    {
                        case 0: seq = target.Send(s_noop); break;
                        case 1: seq = target.SendPassive(s_noop); break;
                        default: target.TrySend(s_noop); break;
                    }
                }
                target.WaitFor(seq);
                return ValueTask.CompletedTask;
            };
        }
        await Progress.Await(Task.WhenAll(runtime[0].InvokeAsync(storm[0]).AsTask(), runtime[1].InvokeAsync(storm[1]).AsTask()), Progress.Of(runtime));
        // The callers have their results; wait until the CPUs have also finished the bookkeeping of the last calls.
        await MetricsTests.WaitUntilQuiescent(runtime);
        MetricsTests.AssertMeterMatchesStatistics(runtime, recorder.Collect());
        MetricsTests.AssertSoftMeterMatchesStatistics(runtime, recorder.Soft());
        Assert.True(runtime.GetStatistics().Sent >= 100_000);
    }
}
