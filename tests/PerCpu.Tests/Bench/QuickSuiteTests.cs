using PerCpu.Benchmarks;

namespace PerCpu.Tests.Bench;

/// <summary>
/// The benchmark suite's quick mode, as CI runs it: every row (C reference built with gcc, the .NET peers, the
/// PerCpu rows) runs once with tiny counts and passes its exactly-once, in-order delivery check. Its figures mean
/// nothing and nothing here looks at them: benchmarks are not tests.
/// </summary>
[Collection("Stress")] // pinned spinning pairs on both cores: not alongside other tests
public sealed class QuickSuiteTests
{
    [Fact]
    public void QuickSuite_RunsEveryRow_AndEachDeliversEveryMessage()
    {
        DirectoryInfo results = Directory.CreateTempSubdirectory("percpu-bench-quick-");
        try
        {
            var log = new StringWriter();
            int exit = BenchmarkSuite.Run(SuiteOptions.Parse(["--quick", "--out", results.FullName]), log);
            string output = log.ToString();
            Assert.True(exit == 0, $"the quick suite exited with {exit}:\n{output}");
            Assert.Matches(@"all \d+ rows ran", output);
            Assert.DoesNotContain("FAILED", output);
            Assert.True(File.Exists(Path.Combine(results.FullName, "latest-quick.json")), $"no JSON report in {results.FullName}");
            Assert.True(File.Exists(Path.Combine(results.FullName, "latest-quick.svg")), $"no chart in {results.FullName}");
        }
        finally
        {
            results.Delete(recursive: true);
        }
    }
}
