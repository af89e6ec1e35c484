using System.Diagnostics;
using System.Runtime;
using System.Runtime.InteropServices;
using PerCpu.Benchmarks.Bdn;
using PerCpu.Benchmarks.Harness;
using PerCpu.Benchmarks.Native;
using PerCpu.Benchmarks.Peers;
using PerCpu.Benchmarks.PerCpuRows;
using PerCpu.Benchmarks.Report;

namespace PerCpu.Benchmarks;

/// <summary>
/// The suite's entry point, for <c>dotnet run --project bench/PerCpu.Benchmarks</c> and for the <c>percpu bench</c>
/// command: builds the native reference, takes the placement reference, measures every row (native, C# rings,
/// .NET peers, PerCpu), then prints the table and writes JSON and SVG to the results folder.
/// </summary>
public static class BenchmarkSuite
{
    /// <summary>Parses <paramref name="args"/> (see <see cref="SuiteOptions.Usage"/>) and runs. 0 = every row ran; 1 = a row failed; 2 = bad arguments.</summary>
    public static int Run(string[] args)
    {
        SuiteOptions options;
        try
        {
            options = SuiteOptions.Parse(args);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine(e.Message);
            return 2;
        }
        if (options.Help)
        {
            Console.WriteLine(SuiteOptions.Usage);
            return 0;
        }
        return options.Bdn ? BdnEntry.Run(options) : Run(options, Console.Out);
    }

    /// <summary>Runs the pinned-thread harness; progress and the table go to <paramref name="log"/>.</summary>
    public static int Run(SuiteOptions options, TextWriter log)
    {
        DateTimeOffset started = DateTimeOffset.Now;
        var clock = Stopwatch.StartNew();
        // A hung row (a lost message leaves a thread spinning) fails instead of hanging CI.
        // Quick: 30 s, far above a healthy run (milliseconds) yet below a minute; an overloaded machine can starve
        // a pinned spin pair for seconds (each side needs the other on-CPU at the same moment).
        TimeSpan hang = options.Quick ? TimeSpan.FromSeconds(30) : TimeSpan.FromSeconds(120);
        ThreadPair.Timeout = hang;
        NativeReference.Timeout = hang;

        string? benchDir = BenchDirectory.Find();
        log.WriteLine($"PerCpu benchmark suite ({(options.Quick ? "quick" : "full")}); bench folder: {benchDir ?? "not found (run from the checkout, or set PERCPU_BENCH_DIR)"}");
        if (Environment.ProcessorCount < 2)
            log.WriteLine("warning: this machine has 1 CPU; every cross-CPU row will fail (they pin to CPU 0 and CPU 1)");

        NativeReference? native = null;
        string nativeDescription;
        try
        {
            if (benchDir is null) throw new DirectoryNotFoundException("bench/native not found");
            native = NativeReference.Prepare(Path.Combine(benchDir, "native"));
            nativeDescription = $"{native.Compiler}; {native.BinaryPath}";
        }
        catch (Exception e)
        {
            nativeDescription = $"UNAVAILABLE: {e.Message}";
        }
        log.WriteLine($"native reference: {nativeDescription}");
        string nativeError = nativeDescription;
        NativeReference Native() => native ?? throw new InvalidOperationException($"native reference {nativeError}");

        // Placement reference: ~15 probes spread over 1.5 s (quick: 3 back to back, reported but not used to gate).
        // PERCPU_BENCH_PROBE=managed forces the C# probe (to compare the two, or to test the fallback).
        bool managedProbe = string.Equals(Environment.GetEnvironmentVariable("PERCPU_BENCH_PROBE"), "managed", StringComparison.OrdinalIgnoreCase);
        IPlacementProbe probe = native is not null && !managedProbe ? new NativeProbe(native) : new ManagedProbe();
        PlacementGate? gate = null;
        try
        {
            gate = options.Quick ? PlacementGate.Start(probe, 3, 0) : PlacementGate.Start(probe, 15, 100);
            log.WriteLine($"placement reference: {gate.ReferenceNs:0} ns per line round trip ({probe.Description})");
        }
        catch (Exception e)
        {
            log.WriteLine($"placement probe failed, runs are not gated: {e.Message}");
        }

        List<BenchRow> rows = AllRows(Native).Where(r => r.Matches(options.Filters)).OrderBy(r => r.Kind).ToList();
        if (rows.Count == 0)
        {
            log.WriteLine($"no row matches --filter {string.Join(", ", options.Filters)}");
            return 2;
        }

        var runner = new RowRunner(options.Quick ? null : gate, options.Quick, options.RunSeconds);
        MachineLoad suiteLoad0 = MachineLoad.Snapshot();
        var results = new List<RowResult>(rows.Count);
        for (int i = 0; i < rows.Count; i++)
        {
            BenchRow row = rows[i];
            log.Write($"  [{i + 1,2}/{rows.Count}] {row.Name,-46} ");
            long t0 = Stopwatch.GetTimestamp();
            RowResult r = runner.Measure(row);
            results.Add(r);
            string took = $"({Stopwatch.GetElapsedTime(t0).TotalSeconds:0.0} s)";
            log.WriteLine(r.Ok
                ? $"{Format.Value(row.Kind, r.Value),12}  {(options.Quick ? "" : $"runs {r.RunsKept}/{r.RunsTried}{(r.PlacementOff ? " PLACEMENT OFF" : "")}  ")}{took}"
                : $"FAILED {took}: {r.Error}");
        }

        var (suiteOthers, suiteSteal) = MachineLoad.Between(suiteLoad0, MachineLoad.Snapshot());
        IReadOnlyList<double> endProbes = [];
        if (gate is not null)
        {
            try { endProbes = probe.Measure(options.Quick ? 1 : 5, options.Quick ? 0 : 100); }
            catch (Exception e) { log.WriteLine($"end probes failed: {e.Message}"); }
        }

        var report = new SuiteReport(results)
        {
            Started = started,
            Quick = options.Quick,
            ElapsedSeconds = clock.Elapsed.TotalSeconds,
            Machine = MachineDescription(),
            Runtime = $".NET {Environment.Version}, {(GCSettings.IsServerGC ? "server" : "workstation")} GC ({GCSettings.LatencyMode}), TieredPGO {Environment.GetEnvironmentVariable("DOTNET_TieredPGO") ?? "default"}",
            Native = nativeDescription,
            ProbeDescription = probe.Description,
            ReferenceProbeNs = gate?.ReferenceNs ?? 0,
            ReferenceProbes = gate?.ReferenceProbes ?? [],
            EndProbes = endProbes,
            PlacementWaitSeconds = gate?.WaitedSeconds ?? 0,
            Filters = options.Filters,
            OthersPercent = suiteOthers,
            StealPercent = suiteSteal,
        };
        IReadOnlyList<TargetResult> targets = Targets.Evaluate(report);
        TableReport.Write(report, targets, log);
        WriteFiles(report, targets, options, benchDir, log);

        int failures = report.Failures;
        log.WriteLine(failures == 0 ? $"all {results.Count} rows ran" : $"{failures} of {results.Count} rows FAILED");
        return failures == 0 ? 0 : 1;
    }

    /// <summary>Every row, grouped later by kind. Soft-interrupt rows join when soft interrupts exist (see SoftInterruptRows).</summary>
    private static IEnumerable<BenchRow> AllRows(Func<NativeReference> native) =>
        NativeRows.Rows(native)
            .Concat(RingRows.Rows())
            .Concat(ChannelRows.Rows())
            .Concat(QueueRows.Rows())
            .Concat(WaitRows.Rows())
            .Concat(DedicatedThreadRows.Rows())
            .Concat(SendRows.Rows())
            .Concat(RoundTripRows.Rows())
            .Concat(IdleRow.Rows())
            .Concat(SoftInterruptRows.Rows());

    private static void WriteFiles(SuiteReport report, IReadOnlyList<TargetResult> targets, SuiteOptions options, string? benchDir, TextWriter log)
    {
        string dir = options.OutputDirectory
                     ?? (benchDir is not null ? Path.Combine(benchDir, "results") : Path.Combine(Environment.CurrentDirectory, "percpu-bench-results"));
        Directory.CreateDirectory(dir);
        string stem = $"bench-{report.Started:yyyyMMdd-HHmmss}-{(report.Quick ? "quick" : "full")}";
        string latest = report.Quick ? "latest-quick" : "latest";
        string txt = Path.Combine(dir, stem + ".txt"), json = Path.Combine(dir, stem + ".json"), svg = Path.Combine(dir, stem + ".svg");

        using (var w = new StreamWriter(txt)) TableReport.Write(report, targets, w);
        using (var s = File.Create(json)) JsonReport.Write(report, targets, s);
        using (var w = new StreamWriter(svg)) SvgChart.Write(report, targets, w);
        foreach (string ext in new[] { ".txt", ".json", ".svg" })
            File.Copy(Path.Combine(dir, stem + ext), Path.Combine(dir, latest + ext), overwrite: true);
        log.WriteLine($"results: {txt}, {Path.GetFileName(json)}, {Path.GetFileName(svg)} (copied to {latest}.*)");
    }

    private static string MachineDescription()
    {
        string model = "unknown CPU";
        try
        {
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("model name", StringComparison.Ordinal)) { model = line[(line.IndexOf(':') + 1)..].Trim(); break; }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return $"{model}, {Environment.ProcessorCount} CPUs, {RuntimeInformation.OSDescription} {RuntimeInformation.OSArchitecture}";
    }
}
