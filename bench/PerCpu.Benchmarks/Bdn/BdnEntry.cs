using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Bdn;

/// <summary>
/// <c>--bdn</c>: the single-thread benchmarks under BenchmarkDotNet, in process (no generated project, so nothing is
/// rebuilt and the percpu CLI can host it too). <c>--quick</c> runs one dry iteration of each; <c>--filter</c>
/// matches method names. Artifacts go to results/bdn.
/// </summary>
public static class BdnEntry
{
    public static int Run(SuiteOptions options)
    {
        Job job = (options.Quick ? Job.Dry : Job.Default).WithToolchain(InProcessEmitToolchain.Instance);
        string? benchDir = BenchDirectory.Find();
        string results = options.OutputDirectory ?? (benchDir is not null ? Path.Combine(benchDir, "results") : Path.Combine(Environment.CurrentDirectory, "percpu-bench-results"));
        IConfig config = DefaultConfig.Instance
            .AddJob(job)
            .AddDiagnoser(MemoryDiagnoser.Default)
            .WithArtifactsPath(Path.Combine(results, "bdn"));
        if (options.Filters.Count > 0)
            config = config.AddFilter(new SimpleFilter(b => options.Filters.Any(f =>
                b.Descriptor.WorkloadMethod.Name.Contains(f, StringComparison.OrdinalIgnoreCase))));
        Summary summary = BenchmarkRunner.Run<SingleThreadBenchmarks>(config);
        bool failed = summary.HasCriticalValidationErrors || summary.Reports.Length == 0 || summary.Reports.Any(r => !r.Success);
        return failed ? 1 : 0;
    }
}
