using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Native;

/// <summary>The placement probe of the native reference: the same threads and loop as its "line" row.</summary>
internal sealed class NativeProbe(NativeReference native) : IPlacementProbe
{
    public string Description => "native probe (percpu_native probe: C threads pinned to CPU 0/1, 20k round trips of one line)";

    public IReadOnlyList<double> Measure(int count, int intervalMs) => native.Probe(count, intervalMs);
}
