using System.Diagnostics;
using System.Text.Json;

namespace PerCpu.Diagnostics;

/// <summary>
/// Writes a <see cref="CpuTrace"/> in the Chrome Trace Event Format (the JSON that Perfetto and <c>chrome://tracing</c>
/// open): a <c>traceEvents</c> array, one process (pid 1) and one thread per CPU, named <c>CPU n</c> and sorted by id.
/// Thread ids are CPU id + 1: some viewers merge thread 0 into thread 1 (Perfetto did until 2025), so no track uses
/// id 0. Trace points are thread-scoped instant events (<c>ph: i</c>); a cpusync (<c>sync_start</c> to
/// <c>sync_end</c>) and a soft interrupt run (entry to exit) become complete events (<c>ph: X</c>) with a duration.
/// Timestamps are microseconds since the trace started.
/// </summary>
internal static class ChromeTraceWriter
{
    internal const int Pid = 1;

    /// <summary>The Chrome thread id of a CPU's track.</summary>
    internal static int Tid(int cpu) => cpu + 1;

    public static void Write(CpuTrace trace, Stream stream)
    {
        IReadOnlyList<CpuTraceEvent> events = trace.Events;
        double microsPerTick = 1e6 / Stopwatch.Frequency;
        long start = trace.StartTimestamp;
        double Micros(long timestamp) => Math.Round((timestamp - start) * microsPerTick, 3);

        using var w = new Utf8JsonWriter(stream);
        w.WriteStartObject();
        w.WriteString("displayTimeUnit", "ns");
        w.WriteStartArray("traceEvents");

        w.WriteStartObject();
        w.WriteString("name", "process_name");
        w.WriteString("ph", "M");
        w.WriteNumber("pid", Pid);
        w.WriteStartObject("args");
        w.WriteString("name", "PerCpu");
        w.WriteEndObject();
        w.WriteEndObject();
        for (int cpu = 0; cpu < trace.CpuCount; cpu++)
        {
            WriteThreadMetadata(w, cpu, "thread_name", name: $"CPU {cpu}");
            WriteThreadMetadata(w, cpu, "thread_sort_index", sortIndex: cpu);
        }

        // Begin events (sync_start, softint_entry) waiting for their end, per CPU: they nest like a call stack.
        var open = new List<int>[trace.CpuCount];
        for (int i = 0; i < events.Count; i++)
        {
            CpuTraceEvent e = events[i];
            switch (e.Kind)
            {
                case TraceEvent.SyncStart:
                case TraceEvent.SoftintEntry:
                    (open[e.Cpu] ??= []).Add(i);
                    continue;
                case TraceEvent.SyncEnd:
                case TraceEvent.SoftintExit:
                {
                    List<int>? stack = open[e.Cpu];
                    TraceEvent begin = e.Kind == TraceEvent.SyncEnd ? TraceEvent.SyncStart : TraceEvent.SoftintEntry;
                    if (stack is { Count: > 0 } && events[stack[^1]].Kind == begin)
                    {
                        CpuTraceEvent b = events[stack[^1]];
                        stack.RemoveAt(stack.Count - 1);
                        WriteEvent(w, b, "X", Micros(b.Timestamp), Math.Max(0, Micros(e.Timestamp) - Micros(b.Timestamp)));
                    }
                    else
                    {
                        WriteEvent(w, e, "i", Micros(e.Timestamp), 0); // its begin was overwritten or recorded before tracing started
                    }
                    break;
                }
                default:
                    WriteEvent(w, e, "i", Micros(e.Timestamp), 0);
                    break;
            }
            if ((i & 1023) == 0) w.Flush(); // stream large traces out rather than buffering them whole
        }
        // Still running when tracing stopped: a begin without an end (viewers show it as "did not end").
        foreach (List<int>? stack in open)
            if (stack != null)
                foreach (int i in stack) WriteEvent(w, events[i], "B", Micros(events[i].Timestamp), 0);

        w.WriteEndArray();
        w.WriteStartObject("otherData");
        w.WriteString("producer", "PerCpu");
        w.WriteNumber("cpus", trace.CpuCount);
        w.WriteNumber("events", events.Count);
        w.WriteNumber("lost_events", trace.LostEvents);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteThreadMetadata(Utf8JsonWriter w, int cpu, string kind, string? name = null, int sortIndex = 0)
    {
        w.WriteStartObject();
        w.WriteString("name", kind);
        w.WriteString("ph", "M");
        w.WriteNumber("pid", Pid);
        w.WriteNumber("tid", Tid(cpu));
        w.WriteStartObject("args");
        if (name != null) w.WriteString("name", name);
        else w.WriteNumber("sort_index", sortIndex);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteEvent(Utf8JsonWriter w, in CpuTraceEvent e, string phase, double ts, double dur)
    {
        w.WriteStartObject();
        w.WriteString("name", SliceName(e, phase));
        w.WriteString("cat", TraceNames.Category(e.Kind));
        w.WriteString("ph", phase);
        if (phase == "i") w.WriteString("s", "t");
        w.WriteNumber("ts", ts);
        if (phase == "X") w.WriteNumber("dur", dur);
        w.WriteNumber("pid", Pid);
        w.WriteNumber("tid", Tid(e.Cpu));
        w.WriteStartObject("args");
        w.WriteNumber("src", e.SourceCpu);
        w.WriteNumber("dst", e.TargetCpu);
        if (e.Function != null) w.WriteString("func", e.Function);
        w.WriteNumber("arg", e.Argument);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>Instants keep the KTR name; a duration is named for what ran (the handler) so that the track reads well.</summary>
    private static string SliceName(in CpuTraceEvent e, string phase)
    {
        if (phase == "i") return e.Name;
        return e.Kind == TraceEvent.SoftintEntry ? e.Function ?? "softint" : "cpusync";
    }
}
