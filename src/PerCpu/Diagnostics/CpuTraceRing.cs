namespace PerCpu.Diagnostics;

/// <summary>
/// One CPU's trace ring (like KTR): fixed size, written only by the owning CPU thread. Null on <see cref="Cpu"/> while
/// tracing is off, so that every trace point costs one predictable branch.
/// </summary>
internal sealed class CpuTraceRing
{
    /// <summary>Records one event. Owner thread only.</summary>
    public void Record(TraceEvent ev, int source, int target, Delegate? func, long arg)
    {
        // Filled in by the observability issue.
    }
}
