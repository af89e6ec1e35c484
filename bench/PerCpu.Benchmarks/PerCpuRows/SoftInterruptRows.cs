using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.PerCpuRows;

/// <summary>
/// PLACEHOLDER: soft-interrupt rows, to be written when soft interrupts land (DESIGN §5). Nothing is measured here
/// yet, on purpose: a row that does not exercise the real mechanism would be a fake figure.
/// </summary>
/// <remarks>
/// Rows to add here then (and the single-thread "Schedule + dispatch" benchmark in Bdn/SingleThreadBenchmarks.cs):
/// <list type="bullet">
/// <item><c>percpu.softint.schedule</c>: Schedule() on the current CPU + dispatch of the handler, per call (ns).</item>
/// <item><c>percpu.softint.scheduleon</c>: ScheduleOn(remote CPU) throughput and round trip, coalescing checked.</item>
/// <item>exactly-once checks as in the other rows: a handler scheduled twice while pending runs once.</item>
/// </list>
/// </remarks>
internal static class SoftInterruptRows
{
    public static IEnumerable<BenchRow> Rows() => [];
}
