using System.CommandLine;
using PerCpu.Cli.Bench;
using PerCpu.Cli.Demo;

namespace PerCpu.Cli;

/// <summary>
/// The <c>percpu</c> commands: <c>demo</c> (a live view of a runtime under a workload that uses every mechanism),
/// <c>trace</c> (the same, recorded into a Chrome trace), <c>bench</c> (the benchmark suite of a source tree),
/// <c>kv</c> (percpu-kv, the Redis-protocol server of src/PerCpu.Kv).
/// </summary>
internal static class CliApp
{
    /// <summary>Parses and runs one command line; returns the exit code (0 success, 1 failure, 2 usage).</summary>
    public static async Task<int> RunAsync(string[] args, CliConsole console, CancellationToken cancellationToken = default)
    {
        RootCommand root = Build(console);
        ParseResult parsed = root.Parse(args);
        return await parsed.InvokeAsync(new InvocationConfiguration { Output = console.Out, Error = console.Error }, cancellationToken);
    }

    private static readonly int s_defaultCpus = Math.Max(2, Environment.ProcessorCount);

    private static Option<double> SecondsOption(double defaultSeconds)
    {
        var option = new Option<double>("--seconds", "-s")
        {
            Description = $"How long the workload runs, in seconds (default {defaultSeconds}).",
            DefaultValueFactory = _ => defaultSeconds,
        };
        option.Validators.Add(r =>
        {
            double v = r.GetValueOrDefault<double>();
            if (!(v > 0 && v <= 3600)) r.AddError($"--seconds must be more than 0 and at most 3600 (got {v}).");
        });
        return option;
    }

    private static Option<int> CpusOption()
    {
        var option = new Option<int>("--cpus", "-c")
        {
            Description = $"Virtual CPUs (threads) to start (default: one per core, at least 2; here {s_defaultCpus}).",
            DefaultValueFactory = _ => s_defaultCpus,
        };
        option.Validators.Add(r =>
        {
            int v = r.GetValueOrDefault<int>();
            if (v < 2 || v > 1024) r.AddError($"--cpus must be from 2 to 1024: the demo sends between CPUs (got {v}).");
        });
        return option;
    }

    private static Option<bool> JsonOption() => new("--json") { Description = "Print only a JSON summary at the end (for scripts)." };

    internal static RootCommand Build(CliConsole console)
    {
        var root = new RootCommand(
            "percpu: the PerCpu thread-per-core runtime's tool. Try 'percpu demo'. Metrics: dotnet-counters monitor --counters PerCpu; " +
            "events: dotnet-trace collect --providers PerCpu.");

        var demoSeconds = SecondsOption(10);
        var demoCpus = CpusOption();
        var demoJson = JsonOption();
        var demo = new Command("demo",
            "Start a runtime on every core and run a workload that uses every mechanism (IPI storms with passive and try-sends, " +
            "soft interrupts at all levels, cpusync, InvokeAsync, SendToMask); show a live per-CPU table and a summary.")
        {
            demoSeconds, demoCpus, demoJson,
        };
        demo.SetAction((parse, ct) => DemoRunner.RunAsync(
            new DemoOptions(parse.GetValue(demoSeconds), parse.GetValue(demoCpus), parse.GetValue(demoJson)), console, ct));

        var traceOut = new Option<string>("--out", "-o")
        {
            Description = "The Chrome trace file to write (opens in https://ui.perfetto.dev; default trace.json).",
            DefaultValueFactory = _ => "trace.json",
        };
        var traceEvents = new Option<int>("--events")
        {
            Description = "Trace ring size per CPU, a power of two: the newest events are kept (default 65536).",
            DefaultValueFactory = _ => 65536,
        };
        traceEvents.Validators.Add(r =>
        {
            int v = r.GetValueOrDefault<int>();
            if (v < 16 || v > (1 << 24) || (v & (v - 1)) != 0) r.AddError($"--events must be a power of two from 16 to 16777216 (got {v}).");
        });
        var traceSeconds = SecondsOption(2);
        var traceCpus = CpusOption();
        var traceJson = JsonOption();
        var trace = new Command("trace", "Run the demo with tracing on and write the per-CPU trace rings (like KTR) as a Chrome trace: one track per CPU.")
        {
            traceOut, traceEvents, traceSeconds, traceCpus, traceJson,
        };
        trace.SetAction((parse, ct) => DemoRunner.RunAsync(
            new DemoOptions(parse.GetValue(traceSeconds), parse.GetValue(traceCpus), parse.GetValue(traceJson),
                parse.GetValue(traceOut), parse.GetValue(traceEvents)), console, ct));

        var bench = new Command("bench",
            "Run the benchmark suite (bench/PerCpu.Benchmarks of a PerCpu source tree) with dotnet run -c Release; " +
            "other arguments go to the suite (use 'percpu bench -- --help' for its options).")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        bench.SetAction((parse, ct) => BenchRunner.RunAsync(parse.UnmatchedTokens, console, ct));

        var kv = new Command("kv",
            "Run percpu-kv, the shard-per-CPU Redis-protocol server on PerCpu sockets, until Ctrl+C " +
            "(options: --port, --bind, --cpus, --dir, --appendfsync, --maxclients, ...; 'percpu kv -- --help' lists them).")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        // Its own parser (shared with the percpu-kv program) reads every token after 'kv', --help included.
        kv.Options.Clear();
        kv.SetAction((parse, _) => Kv.KvProgram.RunAsync([.. parse.UnmatchedTokens]));

        root.Subcommands.Add(demo);
        root.Subcommands.Add(trace);
        root.Subcommands.Add(bench);
        root.Subcommands.Add(kv);
        return root;
    }
}
