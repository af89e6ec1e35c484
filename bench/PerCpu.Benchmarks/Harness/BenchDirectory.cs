namespace PerCpu.Benchmarks.Harness;

/// <summary>
/// Finds the checkout's bench/ folder (it holds native/ and results/) by walking up from the binary and from the
/// working directory; PERCPU_BENCH_DIR overrides. Null when the suite runs outside a checkout.
/// </summary>
internal static class BenchDirectory
{
    public static string? Find()
    {
        string? env = Environment.GetEnvironmentVariable("PERCPU_BENCH_DIR");
        if (!string.IsNullOrEmpty(env)) return Path.GetFullPath(env);
        foreach (string start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "bench");
                if (File.Exists(Path.Combine(candidate, "native", "percpu_native.c"))) return candidate;
                if (File.Exists(Path.Combine(dir.FullName, "native", "percpu_native.c"))) return dir.FullName;
            }
        }
        return null;
    }
}
