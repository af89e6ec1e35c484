using System.Diagnostics.Metrics;

namespace PerCpu.Tests.Diagnostics;

public sealed class MetricsTests
{
    /// <summary>Every instrument of the meter and the statistics field it must report.</summary>
    private static readonly Dictionary<string, Func<CpuStatistics, long>> s_fields = new()
    {
        ["percpu.ipi.messages.sent"] = s => s.Sent,
        ["percpu.ipi.messages.received"] = s => s.Received,
        ["percpu.ipi.full_waits"] = s => s.FifoFull,
        ["percpu.ipi.avoided_wakes"] = s => s.Avoided,
        ["percpu.ipi.passive_sends"] = s => s.Passive,
        ["percpu.ipi.failed_sends"] = s => s.SendFailed,
        ["percpu.ipi.wakes.sent"] = s => s.WakesSent,
        ["percpu.ipi.wakes.received"] = s => s.WakesReceived,
        ["percpu.exceptions"] = s => s.Errors,
        ["percpu.cpusyncs"] = s => s.CpuSyncs,
        ["percpu.stalls"] = s => s.Stalls,
    };

    /// <summary>The soft interrupt instruments (tags cpu and level) and the field each reports.</summary>
    private static readonly Dictionary<string, Func<SoftInterruptStatistics, long>> s_softFields = new()
    {
        ["percpu.softint.runs"] = s => s.Count,
        ["percpu.softint.blocks"] = s => s.Blocks,
    };

    /// <summary>The histograms (unit s) and gauges.</summary>
    private static readonly string[] s_histograms = ["percpu.softint.duration", "percpu.wait.duration"];
    private static readonly string[] s_gauges = ["percpu.inbox.depth", "percpu.inbox.waiting_calls"];

    private static IEnumerable<string> AllInstruments => s_fields.Keys.Concat(s_softFields.Keys).Concat(s_histograms).Concat(s_gauges).Order();

    /// <summary>The socket and timer instruments (percpu.io.*, percpu.timer.*): tested in Net/IoMetricsTests.</summary>
    internal static bool IsIo(string name) => name.StartsWith("percpu.io.", StringComparison.Ordinal) || name.StartsWith("percpu.timer.", StringComparison.Ordinal);

    /// <summary>How <see cref="Recorder"/> reports a measurement with <c>percpu.sender=outside</c> (and no CPU id).</summary>
    internal const int Outside = -1;

    /// <summary>Listens to one runtime's meter only (other tests' runtimes publish meters of the same name).</summary>
    internal sealed class Recorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        public readonly List<(string Instrument, int Cpu, long Value)> Measurements = [];
        public readonly List<(string Instrument, int Cpu, string Level, long Value)> SoftMeasurements = [];
        /// <summary>Histogram measurements: every attribute, by name.</summary>
        public readonly List<(string Instrument, double Value, Dictionary<string, object?> Tags)> Recorded = [];
        public readonly HashSet<string> Published = [];
        public readonly HashSet<string> Completed = [];
        private readonly object _gate = new();

        public Recorder(CpuRuntime runtime)
        {
            Meter meter = runtime.Meter;
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                // The socket and timer instruments have their own tests (Net/IoMetricsTests).
                if (!ReferenceEquals(instrument.Meter, meter) || IsIo(instrument.Name)) return;
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
                    if (tag.Key == "percpu.cpu.id") cpu = (int)tag.Value!;
                    else if (tag.Key == "percpu.sender") cpu = Assert.IsType<string>(tag.Value) == "outside" ? Outside : throw new Xunit.Sdk.XunitException($"percpu.sender={tag.Value}");
                    else if (tag.Key == "percpu.softint.level") level = (string)tag.Value!;
                    else throw new Xunit.Sdk.XunitException($"unexpected attribute {tag.Key} on {instrument.Name}");
                }
                Assert.NotEqual(int.MinValue, cpu); // every measurement says whose it is
                lock (_gate)
                {
                    if (level != null) SoftMeasurements.Add((instrument.Name, cpu, level, value));
                    else Measurements.Add((instrument.Name, cpu, value));
                }
            });
            _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) =>
            {
                var all = new Dictionary<string, object?>();
                foreach (KeyValuePair<string, object?> tag in tags) all[tag.Key] = tag.Value;
                lock (_gate) Recorded.Add((instrument.Name, value, all));
            });
            _listener.Start();
        }

        /// <summary>The histogram measurements so far.</summary>
        public List<(string Instrument, double Value, Dictionary<string, object?> Tags)> Histograms()
        {
            lock (_gate) return [.. Recorded];
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

        /// <summary>A gauge's value for <paramref name="cpu"/> in the last <see cref="Collect"/>.</summary>
        public long Gauge(string instrument, int cpu)
        {
            lock (_gate) return Measurements.Single(m => m.Instrument == instrument && m.Cpu == cpu).Value;
        }

        /// <summary>The soft interrupt measurements of the last <see cref="Collect"/>.</summary>
        public List<(string Instrument, int Cpu, string Level, long Value)> Soft()
        {
            lock (_gate) return [.. SoftMeasurements];
        }

        public void Dispose() => _listener.Dispose();
    }

    /// <summary>
    /// Asserts that every instrument reports, for every CPU and for outside threads, what the statistics API says (its
    /// totals since the start: the meter ignores <see cref="CpuRuntime.ResetStatistics"/>).
    /// </summary>
    internal static void AssertMeterMatchesStatistics(CpuRuntime runtime, List<(string Instrument, int Cpu, long Value)> measured)
    {
        CpuStatistics external = runtime.Internals.External.Snapshot();
        foreach ((string name, Func<CpuStatistics, long> field) in s_fields)
        {
            var mine = measured.Where(m => m.Instrument == name).ToList();
            CpuStatistics total = external;
            for (int cpu = 0; cpu < runtime.CpuCount; cpu++)
            {
                CpuStatistics totals = runtime[cpu].Counters.Snapshot();
                total += totals;
                Assert.Equal((name, cpu, field(totals)), mine.Single(m => m.Cpu == cpu));
            }
            long externalValue = mine.Where(m => m.Cpu == Outside).Sum(m => m.Value);
            Assert.Equal((name, field(external)), (name, externalValue));
            Assert.Equal((name, field(total)), (name, mine.Sum(m => m.Value)));
            Assert.All(mine, m => Assert.InRange(m.Cpu, Outside, runtime.CpuCount - 1));
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
                    Assert.Equal((name, cpu, level.ToString().ToLowerInvariant(), field(runtime[cpu].GetSoftInterruptTotals(level))),
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
        Assert.Contains(("percpu.ipi.messages.sent", Outside, 1L), measured);
        Assert.Contains(("percpu.ipi.passive_sends", 0, 1L), measured);
        Assert.Contains(("percpu.ipi.failed_sends", 0, 1L), measured);
        Assert.Contains(("percpu.ipi.messages.received", 0, 1L), measured);
        Assert.Contains(("percpu.ipi.messages.received", 1, 10L), measured); // send, passive, the thrower, 7 try-sends (ring at 10 of 16)
        Assert.Contains(("percpu.exceptions", 1, 1L), measured);
        Assert.Contains(("percpu.ipi.messages.sent", 0, 11L), measured); // the refused try-send counts as sent, like ipiq_count
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
        Assert.Contains(("percpu.softint.runs", 1, "serial", 1L), soft);
        Assert.Contains(("percpu.softint.runs", 1, "bio", 1L), soft);
        Assert.Contains(("percpu.softint.blocks", 1, "bio", 1L), soft);
        Assert.Contains(("percpu.softint.blocks", 0, "bio", 1L), soft);
        Assert.Contains(("percpu.softint.runs", 0, "serial", 0L), soft);
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
    public async Task ResetStatistics_NeverMakesACounterGoBackwards()
    {
        await using var runtime = CpuRuntime.StartManual(new CpuRuntimeOptions { CpuCount = 2 });
        using var recorder = new Recorder(runtime);
        runtime[1].Send(s_noop);
        runtime[1].RunOnce();
        List<(string Instrument, int Cpu, long Value)> before = recorder.Collect();
        Assert.Contains(("percpu.ipi.messages.received", 1, 1L), before);
        runtime.ResetStatistics();
        Assert.Equal(0, runtime[1].GetStatistics().Received); // the statistics API starts again from zero...
        List<(string Instrument, int Cpu, long Value)> after = recorder.Collect();
        Assert.Equal(before.Order(), after.Order()); // ...the published counters do not move
        AssertMeterMatchesStatistics(runtime, after);
        runtime[1].Send(s_noop);
        runtime[1].RunOnce();
        Assert.Contains(("percpu.ipi.messages.received", 1, 2L), recorder.Collect());
        Assert.Equal(1, runtime[1].GetStatistics().Received);
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
                if (ReferenceEquals(instrument.Meter, runtime.Meter) && !IsIo(instrument.Name)) instruments.Add(instrument);
            },
        };
        listener.Start();
        Assert.Equal(AllInstruments, instruments.Select(i => i.Name).Order());
        Assert.All(instruments, i =>
        {
            if (s_histograms.Contains(i.Name))
            {
                Assert.IsType<Histogram<double>>(i);
                Assert.Equal("s", i.Unit);
            }
            else
            {
                if (s_gauges.Contains(i.Name)) Assert.IsType<ObservableGauge<long>>(i);
                else
                {
                    Assert.IsType<ObservableCounter<long>>(i);
                    // OpenTelemetry: a monotonic counter is named for what it counts, in the plural, not "….count".
                    Assert.False(i.Name.EndsWith(".count", StringComparison.Ordinal), i.Name);
                }
                Assert.StartsWith("{", i.Unit);
            }
            Assert.StartsWith("percpu.", i.Name);
            Assert.False(string.IsNullOrWhiteSpace(i.Description));
        });
    }

    [Fact]
    public async Task WaitHistogram_RecordsAWaitForInboxRoom_AndAnOutsideWaitFor()
    {
        await using var runtime = TestUtil.Start(2, o => o.InboxCapacity = 16);
        using var recorder = new Recorder(runtime);
        using var gate = new ManualResetEventSlim();
        TestUtil.Block(runtime[1], gate);
        long seq = 0;
        while (runtime[1].TrySend(s_noop)) seq = runtime[1].Inbox.EnqueuedCount;
        ValueTask<int> waiting = runtime[1].InvokeAsync(static () => 1); // the inbox is full: it waits for room
        recorder.Collect();
        Assert.Equal(1, recorder.Gauge("percpu.inbox.waiting_calls", 1));
        Assert.Equal(16, recorder.Gauge("percpu.inbox.depth", 1));
        ValueTask sequenceWait = runtime[1].WaitForAsync(seq);
        Assert.False(sequenceWait.IsCompleted);
        gate.Set();
        Assert.Equal(1, await waiting.AsTask().WithHangDetector());
        await sequenceWait.AsTask().WithHangDetector();
        await runtime[1].InvokeAsync(static () => { }).AsTask().WithHangDetector();
        var waits = recorder.Histograms().Where(h => h.Instrument == "percpu.wait.duration").ToList();
        Assert.Contains(waits, h => Equals(h.Tags["percpu.wait.reason"], "inbox_room") && Equals(h.Tags["percpu.sender"], "outside") && h.Value > 0);
        Assert.Contains(waits, h => Equals(h.Tags["percpu.wait.reason"], "inbox_sequence") && Equals(h.Tags["percpu.sender"], "outside") && h.Value > 0);
        Assert.All(waits, h => Assert.False(h.Tags.ContainsKey("percpu.cpu.id")));
        recorder.Collect();
        Assert.Equal(0, recorder.Gauge("percpu.inbox.depth", 1));
        Assert.Equal(0, recorder.Gauge("percpu.inbox.waiting_calls", 1));
    }

    [Fact]
    public async Task WaitHistogram_RecordsACpuWaitingForASequence()
    {
        await using var runtime = TestUtil.Start(2);
        using var recorder = new Recorder(runtime);
        using var gate = new ManualResetEventSlim();
        TestUtil.Block(runtime[1], gate);
        // CPU 0 sends to the held CPU 1 and waits for it: a wait that certainly waits (until the gate opens).
        using var sent = new ManualResetEventSlim();
        ValueTask wait = runtime[0].InvokeAsync(static s =>
        {
            Cpu target = Cpu.Current!.Runtime[1];
            long seq = target.Send(s_noop);
            s.Set();
            target.WaitFor(seq); // CPU 1 is held: this waits until the gate opens
        }, sent);
        sent.WaitOrFail("CPU 0 to send");
        gate.Set();
        await wait.AsTask().WithHangDetector();
        Assert.Contains(recorder.Histograms(), h => h.Instrument == "percpu.wait.duration" && Equals(h.Tags["percpu.wait.reason"], "sequence")
            && Equals(h.Tags["percpu.cpu.id"], 0) && h.Value > 0);
    }

    [Fact]
    public async Task SoftInterruptHistogram_RecordsRuns_OnlyWithTiming()
    {
        foreach (bool timing in new[] { false, true })
        {
            await using var runtime = TestUtil.Start(2, o => o.SoftInterruptTiming = timing);
            using var recorder = new Recorder(runtime);
            SoftInterrupt serial = runtime.Establish(SoftLevel.Net, static _ => Thread.SpinWait(100));
            await runtime[1].InvokeAsync(static s => s.Schedule(), serial).AsTask().WithHangDetector();
            await WaitUntilQuiescent(runtime);
            var runs = recorder.Histograms().Where(h => h.Instrument == "percpu.softint.duration").ToList();
            if (!timing)
            {
                Assert.Empty(runs);
                continue;
            }
            var run = Assert.Single(runs);
            Assert.Equal(1, run.Tags["percpu.cpu.id"]);
            Assert.Equal("net", run.Tags["percpu.softint.level"]);
            Assert.True(run.Value > 0);
        }
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
