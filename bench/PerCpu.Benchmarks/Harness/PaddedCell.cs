using System.Runtime.InteropServices;

namespace PerCpu.Benchmarks.Harness;

/// <summary>One word alone on its cache lines (128 bytes either side): what the managed probe bounces.</summary>
[StructLayout(LayoutKind.Explicit, Size = 256)]
internal sealed class PaddedCell
{
    [FieldOffset(128)] public long Value;
}
