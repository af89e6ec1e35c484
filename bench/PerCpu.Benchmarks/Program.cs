namespace PerCpu.Benchmarks;

/// <summary><c>dotnet run -c Release --project bench/PerCpu.Benchmarks -- [--quick] [--filter substr] [--bdn]</c></summary>
internal static class Program
{
    private static int Main(string[] args) => BenchmarkSuite.Run(args);
}
