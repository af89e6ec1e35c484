using System.Diagnostics;
using System.Runtime.Intrinsics.X86;

namespace PerCpu.Benchmarks.Harness;

/// <summary>The placement probe in C#, for machines without gcc: the same bounce as the native probe.</summary>
internal sealed class ManagedProbe : IPlacementProbe
{
    private const int RoundTrips = 20_000;

    public string Description => "managed probe (C# threads pinned to CPU 0/1, 20k round trips of one line)";

    public IReadOnlyList<double> Measure(int count, int intervalMs)
    {
        var result = new List<double>(count);
        for (int i = 0; i < count; i++)
        {
            if (i > 0 && intervalMs > 0) Thread.Sleep(intervalMs);
            result.Add(RoundTripNs(RoundTrips));
        }
        return result;
    }

    /// <summary>Both threads take turns writing one padded word: two line transfers per round trip, no queue.</summary>
    public static double RoundTripNs(int n)
    {
        var cell = new PaddedCell();
        double ns = 0;
        ThreadPair.Run(
            () =>
            {
                long t0 = Stopwatch.GetTimestamp();
                for (long i = 0; i < n; i++)
                {
                    Volatile.Write(ref cell.Value, 2 * i + 1);
                    while (Volatile.Read(ref cell.Value) != 2 * i + 2) X86Base.Pause();
                }
                ns = Stopwatch.GetElapsedTime(t0).TotalNanoseconds / n;
            },
            () =>
            {
                for (long i = 0; i < n; i++)
                {
                    while (Volatile.Read(ref cell.Value) != 2 * i + 1) X86Base.Pause();
                    Volatile.Write(ref cell.Value, 2 * i + 2);
                }
            },
            firstCpu: 0, secondCpu: 1);
        return ns;
    }
}
