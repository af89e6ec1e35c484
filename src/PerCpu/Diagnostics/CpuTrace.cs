using System.Diagnostics;

namespace PerCpu.Diagnostics;

/// <summary>
/// What <see cref="CpuRuntime.StopTrace"/> returns: the events each CPU's trace ring still held (the newest ones, like
/// KTR: a ring keeps its last <c>eventsPerCpu</c> events), merged in time order. Write it with
/// <see cref="WriteChromeTrace"/> and open the file in Perfetto (https://ui.perfetto.dev) or <c>chrome://tracing</c>:
/// one track per CPU.
/// </summary>
[DebuggerDisplay("CpuTrace: {Events.Count} events on {CpuCount} CPUs, {LostEvents} lost")]
public sealed class CpuTrace
{
    private readonly CpuTraceEvent[] _events;

    private CpuTrace(int cpuCount, long startTimestamp, long stopTimestamp, CpuTraceEvent[] events, long lost)
    {
        CpuCount = cpuCount;
        StartTimestamp = startTimestamp;
        Duration = Stopwatch.GetElapsedTime(startTimestamp, stopTimestamp);
        _events = events;
        LostEvents = lost;
    }

    /// <summary>The number of CPUs (tracks) of the runtime that was traced.</summary>
    public int CpuCount { get; }

    /// <summary>Every event kept, oldest first (ties keep each CPU's own order).</summary>
    public IReadOnlyList<CpuTraceEvent> Events => _events;

    /// <summary>Events recorded but not in <see cref="Events"/>: overwritten when a CPU's ring wrapped. A larger <c>eventsPerCpu</c> keeps more.</summary>
    public long LostEvents { get; }

    /// <summary>From <see cref="CpuRuntime.StartTrace"/> to <see cref="CpuRuntime.StopTrace"/>.</summary>
    public TimeSpan Duration { get; }

    /// <summary>The <see cref="Stopwatch"/> timestamp at which tracing started: time zero of the trace.</summary>
    internal long StartTimestamp { get; }

    /// <summary>
    /// Writes the trace as Chrome Trace Event Format JSON (UTF-8): one thread per CPU named <c>CPU n</c>, trace points as
    /// instant events, cpusync and soft interrupt runs as complete (duration) events. The stream is left open.
    /// </summary>
    /// <param name="stream">A writable stream, for example <c>File.Create("trace.json")</c>.</param>
    /// <exception cref="ArgumentException">The stream is not writable.</exception>
    public void WriteChromeTrace(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanWrite) throw new ArgumentException("The stream is not writable: pass a stream opened for writing, such as File.Create(path).", nameof(stream));
        ChromeTraceWriter.Write(this, stream);
    }

    /// <summary>Reads the rings (which may still be written: torn entries are dropped) and resolves function names.</summary>
    internal static CpuTrace Create(CpuTraceRing[] rings, long startTimestamp, long stopTimestamp)
    {
        var records = new List<TraceRecord>();
        long lost = 0;
        foreach (CpuTraceRing ring in rings) lost += ring.Snapshot(records);
        // Each ring is already in time order; a stable sort by timestamp merges them and keeps each CPU's order on ties.
        var order = new int[records.Count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        TraceRecord[] all = records.ToArray();
        Array.Sort(order, (a, b) =>
        {
            int c = all[a].Timestamp.CompareTo(all[b].Timestamp);
            return c != 0 ? c : a.CompareTo(b);
        });
        var names = new Dictionary<Delegate, string>(ReferenceEqualityComparer.Instance);
        var events = new CpuTraceEvent[all.Length];
        for (int i = 0; i < order.Length; i++)
        {
            TraceRecord r = all[order[i]];
            string? function = null;
            if (r.Func != null && !names.TryGetValue(r.Func, out function))
            {
                function = TraceNames.Describe(r.Func);
                names[r.Func] = function;
            }
            events[i] = new CpuTraceEvent
            {
                Timestamp = r.Timestamp,
                Time = Stopwatch.GetElapsedTime(startTimestamp, r.Timestamp),
                Cpu = r.Cpu,
                Name = TraceNames.Point(r.Event),
                SourceCpu = r.Source,
                TargetCpu = r.Target,
                Function = function,
                Argument = r.Arg,
                Kind = r.Event,
            };
        }
        return new CpuTrace(rings.Length, startTimestamp, stopTimestamp, events, lost);
    }
}
