using System.Text.Json;
using PerCpu.Cli;
using PerCpu.Cli.Bench;

namespace PerCpu.Tests.Diagnostics;

/// <summary>The percpu tool, run in-process with its output in writers (plain mode: no terminal). Its runtimes use every core.</summary>
[Collection("Stress")]
public sealed class CliTests
{
    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exitCode = await CliApp.RunAsync(args, CliConsole.ForWriters(output, error)).WithHangDetector();
        return (exitCode, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task Demo_ForOneSecond_RunsEndToEnd_WithPlainLinesAndASummary()
    {
        (int exitCode, string output, string error) = await RunAsync("demo", "--seconds", "1", "--cpus", "2");
        Assert.True(exitCode == 0, $"exit code {exitCode}; stderr: {error}; stdout: {output}");
        Assert.Contains("sent/s=", output); // the plain line at the end of the second
        Assert.Contains("PerCpu demo: 2 CPUs", output);
        Assert.Contains("every accepted message ran", output);
        Assert.DoesNotContain("\u001b[", output); // no escape codes when not on a terminal
        Assert.Equal("", error);
    }

    [Fact]
    public async Task Demo_Json_PrintsOnlyASummary_ThatShowsEveryMechanismRan()
    {
        (int exitCode, string output, string error) = await RunAsync("demo", "--seconds", "1", "--cpus", "2", "--json");
        Assert.True(exitCode == 0, $"exit code {exitCode}; stderr: {error}");
        using JsonDocument doc = JsonDocument.Parse(output); // nothing but the JSON on stdout
        JsonElement root = doc.RootElement;
        Assert.Equal(2, root.GetProperty("cpus").GetInt32());
        Assert.True(root.GetProperty("allAcceptedRan").GetBoolean());
        Assert.Equal(root.GetProperty("accepted").GetInt64(), root.GetProperty("executed").GetInt64());
        JsonElement totals = root.GetProperty("totals");
        // Every pump runs at least one round and the driver at least one tick, however short the run.
        Assert.True(totals.GetProperty("sent").GetInt64() >= 2 * (1024 + 128));
        Assert.True(totals.GetProperty("passive").GetInt64() >= 2 * 128);
        Assert.True(totals.GetProperty("cpuSyncs").GetInt64() >= 1);
        Assert.Equal(2, root.GetProperty("perCpu").GetArrayLength());
        JsonElement[] levels = root.GetProperty("softInterrupts").EnumerateArray().ToArray();
        Assert.Equal(["serial", "net", "bio", "clock"], levels.Select(l => l.GetProperty("level").GetString()));
        Assert.All(levels, l => Assert.True(l.GetProperty("count").GetInt64() >= 1));
        Assert.True(levels.Single(l => l.GetProperty("level").GetString() == "bio").GetProperty("blocks").GetInt64() >= 1);
        JsonElement workload = root.GetProperty("workload");
        Assert.True(workload.GetProperty("invokes").GetInt64() >= 1);
        Assert.True(workload.GetProperty("broadcasts").GetInt64() >= 1);
        Assert.True(workload.GetProperty("runOnAll").GetInt64() >= 1);
    }

    [Fact]
    public async Task Trace_WritesAChromeTrace_WithOneTrackPerCpu()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("percpu-trace-").FullName, "trace.json");
        try
        {
            (int exitCode, string output, string error) = await RunAsync("trace", "--seconds", "1", "--cpus", "2", "--events", "4096", "--out", path, "--json");
            Assert.True(exitCode == 0, $"exit code {exitCode}; stderr: {error}");
            using JsonDocument summary = JsonDocument.Parse(output);
            JsonElement trace = summary.RootElement.GetProperty("trace");
            Assert.Equal(path, trace.GetProperty("path").GetString());
            Assert.InRange(trace.GetProperty("events").GetInt32(), 1, 2 * 4096);

            using JsonDocument chrome = JsonDocument.Parse(File.ReadAllBytes(path));
            JsonElement[] all = chrome.RootElement.GetProperty("traceEvents").EnumerateArray().ToArray();
            string[] threads = all.Where(e => e.GetProperty("name").GetString() == "thread_name")
                .Select(e => e.GetProperty("args").GetProperty("name").GetString()!).Order().ToArray();
            Assert.Equal(["CPU 0", "CPU 1"], threads);
            Assert.Equal(trace.GetProperty("events").GetInt32(), all.Count(e => e.GetProperty("ph").GetString() is "i" or "X" or "B") +
                all.Count(e => e.GetProperty("ph").GetString() == "X")); // a complete event stands for two trace points
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }

    [Theory]
    [InlineData("--seconds", "0", "--seconds must be")]
    [InlineData("--cpus", "1", "--cpus must be")]
    public async Task Demo_BadArguments_FailWithAMessageThatSaysWhatIsAllowed(string option, string value, string message)
    {
        (int exitCode, _, string error) = await RunAsync("demo", option, value);
        Assert.NotEqual(0, exitCode);
        Assert.Contains(message, error);
    }

    [Fact]
    public async Task Help_ListsTheCommands()
    {
        (int exitCode, string output, _) = await RunAsync("--help");
        Assert.Equal(0, exitCode);
        Assert.Contains("demo", output);
        Assert.Contains("trace", output);
        Assert.Contains("bench", output);
    }

    [Fact]
    public void Bench_FindsTheSuite_FromInsideTheSourceTree_AndNotFromOutside()
    {
        string? project = BenchRunner.FindProject([AppContext.BaseDirectory]); // tests/PerCpu.Tests/bin/... of this tree
        Assert.NotNull(project);
        Assert.EndsWith(BenchRunner.ProjectRelativePath, project);
        DirectoryInfo outside = Directory.CreateTempSubdirectory("percpu-bench-");
        try
        {
            Assert.Null(BenchRunner.FindProject([outside.FullName]));
        }
        finally
        {
            outside.Delete();
        }
    }
}
