using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.PerCpuRows;

/// <summary>
/// A fresh two-CPU runtime per run, threads pinned to cores 0 and 1 like the C threads (a poll-mode runtime burns
/// both cores, so none may outlive its run: the placement probes between runs need the cores to themselves).
/// </summary>
internal static class Runtimes
{
    public static CpuRuntime Start(Action<CpuRuntimeOptions>? configure = null)
    {
        var options = new CpuRuntimeOptions
        {
            CpuCount = 2,
            PinThreads = true,
            // A starved CPU (an overloaded machine) must not fail a row before the harness's own hang limit; a real
            // hang still fails, with the library's more precise message, a little before the harness would.
            WaitTimeout = ThreadPair.Timeout > TimeSpan.FromSeconds(15) ? ThreadPair.Timeout - TimeSpan.FromSeconds(5) : TimeSpan.FromSeconds(10),
        };
        configure?.Invoke(options);
        CpuRuntime runtime = CpuRuntime.Start(options);
        if (!runtime.ThreadsPinned || runtime[0].PinnedCore != 0 || runtime[1].PinnedCore != 1)
        {
            string cores = $"{runtime[0].PinnedCore},{runtime[1].PinnedCore}";
            runtime.Dispose();
            throw new InvalidOperationException($"PerCpu CPUs 0 and 1 are pinned to cores {cores}, not 0 and 1: the rows compare with C threads pinned to cores 0 and 1");
        }
        return runtime;
    }
}
