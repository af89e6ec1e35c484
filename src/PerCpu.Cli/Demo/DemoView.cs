using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace PerCpu.Cli.Demo;

/// <summary>
/// How the demo looks: a live per-CPU table like <c>systat -vmstat</c> / <c>vmstat -i</c> (rates per second over the
/// last refresh) with a progress bar, one plain line per second when not on a terminal, and the summary at the end
/// (a table, or JSON).
/// </summary>
internal static class DemoView
{
    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    /// <summary>12345678 → "12.3M": rates fit a narrow column.</summary>
    public static string Rate(double perSecond) => perSecond switch
    {
        < 0.5 => "0",
        < 1_000 => perSecond.ToString("F0", s_inv),
        < 1_000_000 => (perSecond / 1e3).ToString(perSecond < 1e4 ? "F2" : "F1", s_inv) + "k",
        < 1_000_000_000 => (perSecond / 1e6).ToString(perSecond < 1e7 ? "F2" : "F1", s_inv) + "M",
        _ => (perSecond / 1e9).ToString("F2", s_inv) + "G",
    };

    private static string Count(long n) => n.ToString("N0", s_inv);

    private static double Seconds(DemoSample from, DemoSample to) => Math.Max(1e-9, Stopwatch.GetElapsedTime(from.Timestamp, to.Timestamp).TotalSeconds);

    /// <summary>The live view: title, per-CPU table of rates between two samples, and the progress bar.</summary>
    public static IRenderable Live(CpuRuntime runtime, DemoSample previous, DemoSample current, TimeSpan elapsed, TimeSpan duration, string title)
    {
        double dt = Seconds(previous, current);
        string R(long delta) => Rate(delta / dt);

        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumn(new TableColumn("[bold]CPU[/]").RightAligned());
        foreach (string h in new[] { "sent/s", "recv/s", "passive/s", "fifo-full/s", "try-fail/s", "wakes/s", "avoided/s", "errors" })
            table.AddColumn(new TableColumn($"[bold]{h}[/]").RightAligned());
        foreach (SoftLevel level in DemoSample.Levels)
            table.AddColumn(new TableColumn($"[bold]{level.ToString().ToLowerInvariant()}/s[/]").RightAligned());
        table.AddColumn(new TableColumn("[bold]blocks[/]").RightAligned());
        table.AddColumn(new TableColumn("[bold]syncs[/]").RightAligned());

        void Row(string name, CpuStatistics now, CpuStatistics then, Func<int, long> soft, long blocks, bool bold)
        {
            var cells = new List<string>
            {
                name,
                R(now.Sent - then.Sent), R(now.Received - then.Received), R(now.Passive - then.Passive),
                R(now.FifoFull - then.FifoFull), R(now.SendFailed - then.SendFailed), R(now.WakesSent - then.WakesSent),
                R(now.Avoided - then.Avoided), Count(now.Errors),
            };
            for (int l = 0; l < DemoSample.Levels.Length; l++) cells.Add(R(soft(l)));
            cells.Add(Count(blocks));
            cells.Add(Count(now.CpuSyncs));
            // The first cell is markup already (the name); the numbers are escaped.
            table.AddRow(cells.Select((c, i) => i == 0 ? (bold ? $"[bold]{c}[/]" : c) : bold ? $"[bold]{Markup.Escape(c)}[/]" : Markup.Escape(c)).ToArray());
        }

        for (int i = 0; i < current.Cpus.Length; i++)
        {
            int cpu = i;
            string name = runtime[i].PinnedCore >= 0 ? $"{i} [grey](core {runtime[i].PinnedCore})[/]" : i.ToString(s_inv);
            Row(name, current.Cpus[i], previous.Cpus[i], l => current.Soft[cpu, l].Count - previous.Soft[cpu, l].Count, current.SoftBlocks(cpu), bold: false);
        }
        Row("[grey]outside[/]", current.External, previous.External, _ => 0, 0, bold: false);
        long totalBlocks = 0;
        for (int i = 0; i < current.Cpus.Length; i++) totalBlocks += current.SoftBlocks(i);
        Row("all", current.Total, previous.Total, l => current.SoftCount(l) - previous.SoftCount(l), totalBlocks, bold: true);

        return new Rows(new Markup(title), table, ProgressBar(elapsed, duration));
    }

    private static Markup ProgressBar(TimeSpan elapsed, TimeSpan duration)
    {
        const int Width = 40;
        double fraction = Math.Clamp(elapsed / duration, 0, 1);
        int filled = (int)Math.Round(fraction * Width);
        return new Markup(
            $"[green]{new string('━', filled)}[/][grey]{new string('━', Width - filled)}[/] " +
            $"{elapsed.TotalSeconds.ToString("F1", s_inv)}/{duration.TotalSeconds.ToString("F0", s_inv)} s  [grey](Ctrl+C stops early)[/]");
    }

    /// <summary>A plain line of rates for logs: <c>[ 3s/10s] sent/s=... recv/s=...</c>, totals over all CPUs.</summary>
    public static string PlainLine(DemoSample previous, DemoSample current, TimeSpan elapsed, TimeSpan duration)
    {
        double dt = Seconds(previous, current);
        CpuStatistics now = current.Total, then = previous.Total;
        var sb = new StringBuilder();
        sb.Append(s_inv, $"[{elapsed.TotalSeconds,4:F1}s/{duration.TotalSeconds:F0}s]");
        sb.Append(s_inv, $" sent/s={Rate((now.Sent - then.Sent) / dt)} recv/s={Rate((now.Received - then.Received) / dt)}");
        sb.Append(s_inv, $" passive/s={Rate((now.Passive - then.Passive) / dt)} fifo-full/s={Rate((now.FifoFull - then.FifoFull) / dt)}");
        sb.Append(s_inv, $" try-fail/s={Rate((now.SendFailed - then.SendFailed) / dt)} wakes/s={Rate((now.WakesSent - then.WakesSent) / dt)}");
        sb.Append(s_inv, $" avoided/s={Rate((now.Avoided - then.Avoided) / dt)} errors={now.Errors}");
        for (int l = 0; l < DemoSample.Levels.Length; l++)
            sb.Append(s_inv, $" {DemoSample.Levels[l].ToString().ToLowerInvariant()}/s={Rate((current.SoftCount(l) - previous.SoftCount(l)) / dt)}");
        sb.Append(s_inv, $" syncs={now.CpuSyncs}");
        return sb.ToString();
    }

    /// <summary>Builds the summary of a whole run from the first and last samples (the last taken after the runtime stopped).</summary>
    public static DemoSummary Summarize(CpuRuntime runtime, DemoWorkload workload, DemoSample first, DemoSample last, TimeSpan elapsed)
    {
        CpuCounts Counts(int cpu, CpuStatistics s, long soft, long blocks) => new(
            cpu, s.Sent, s.Received, s.Passive, s.FifoFull, s.SendFailed, s.WakesSent, s.WakesReceived, s.Avoided, s.Errors, s.CpuSyncs, soft, blocks);

        var perCpu = new CpuCounts[last.Cpus.Length];
        long softTotal = 0, blocksTotal = 0;
        for (int i = 0; i < perCpu.Length; i++)
        {
            long soft = 0, blocks = 0;
            for (int l = 0; l < DemoSample.Levels.Length; l++)
            {
                soft += last.Soft[i, l].Count - first.Soft[i, l].Count;
                blocks += last.Soft[i, l].Blocks - first.Soft[i, l].Blocks;
            }
            softTotal += soft;
            blocksTotal += blocks;
            perCpu[i] = Counts(i, last.Cpus[i] - first.Cpus[i], soft, blocks);
        }
        var levels = new SoftLevelCounts[DemoSample.Levels.Length];
        for (int l = 0; l < levels.Length; l++)
        {
            long count = 0, blocks = 0;
            for (int i = 0; i < last.Cpus.Length; i++)
            {
                count += last.Soft[i, l].Count - first.Soft[i, l].Count;
                blocks += last.Soft[i, l].Blocks - first.Soft[i, l].Blocks;
            }
            levels[l] = new SoftLevelCounts(DemoSample.Levels[l].ToString().ToLowerInvariant(), count, blocks);
        }
        CpuStatistics total = last.Total - first.Total;
        CpuStatistics external = last.External - first.External;
        // Sent counts every call, refused try-sends included (like the seed's ipiq_count), on CPUs and outside threads alike.
        long accepted = total.Sent - total.SendFailed;
        double seconds = Math.Max(1e-9, elapsed.TotalSeconds);
        return new DemoSummary
        {
            Cpus = runtime.CpuCount,
            ThreadsPinned = runtime.ThreadsPinned,
            Seconds = Math.Round(elapsed.TotalSeconds, 3),
            SentPerSecond = Math.Round(total.Sent / seconds),
            ReceivedPerSecond = Math.Round(total.Received / seconds),
            Totals = Counts(-1, total, softTotal, blocksTotal),
            PerCpu = perCpu,
            SoftInterrupts = levels,
            Workload = new WorkloadCounts(workload.Rounds, workload.Invokes, workload.Broadcasts, workload.Syncs, workload.SoftSchedules),
            Accepted = accepted,
            Executed = total.Received,
            AllAcceptedRan = accepted == total.Received,
            Gc = new GcCounts(last.GcCollections[0] - first.GcCollections[0], last.GcCollections[1] - first.GcCollections[1],
                last.GcCollections[2] - first.GcCollections[2], Math.Round((last.GcPause - first.GcPause).TotalSeconds, 4)),
        };
    }

    /// <summary>The summary for people: a two-column table.</summary>
    public static void WriteSummary(CliConsole console, DemoSummary s)
    {
        CpuCounts t = s.Totals;
        double sec = Math.Max(1e-9, s.Seconds);
        var table = new Table().Border(TableBorder.Rounded).HideHeaders();
        table.Title = new TableTitle($"PerCpu demo: {s.Cpus} CPUs ({(s.ThreadsPinned ? "pinned to cores" : "not pinned")}), {s.Seconds.ToString("F1", s_inv)} s");
        table.AddColumn("what");
        table.AddColumn("value");
        void Add(string what, string value) => table.AddRow(Markup.Escape(what), Markup.Escape(value));
        Add("IPI messages", $"{Count(t.Sent)} sent ({Rate(t.Sent / sec)}/s), {Count(t.Received)} run ({Rate(t.Received / sec)}/s)");
        Add("passive sends", $"{Count(t.Passive)} (no wake-up: picked up at the next pass or tick)");
        Add("fifo full", $"{Count(t.FifoFull)} sends found the ring half full and drained their own queue while waiting");
        Add("try-sends refused", $"{Count(t.SendFailed)} (ring two-thirds full; TrySend never waits)");
        long wakeable = t.WakesSent + t.WakesAvoided;
        string avoidedShare = wakeable > 0 ? $" ({(100.0 * t.WakesAvoided / wakeable).ToString("F2", s_inv)}% needed none)" : "";
        Add("wake-ups", $"{Count(t.WakesSent)} sent, {Count(t.WakesAvoided)} avoided{avoidedShare}, {Count(t.WakesReceived)} received");
        Add("InvokeAsync", $"{Count(s.Workload.Invokes)} calls with results (CPU to CPU and thread to CPU)");
        Add("SendToMask", $"{Count(s.Workload.Broadcasts)} broadcasts");
        Add("cpusync", $"{Count(t.CpuSyncs)} synchronizations mastered ({Count(s.Workload.RunOnAll)} RunOnAllAsync calls)");
        Add("soft interrupts", string.Join(", ", s.SoftInterrupts.Select(l => $"{l.Level} {Count(l.Count)}")) + $"; {Count(t.SoftInterruptBlocks)} blocks");
        Add("errors", $"{Count(t.Errors)} (deliberate throws: counted, reported, and the CPU went on)");
        Add("garbage collections", $"{s.Gc.Gen0} gen0, {s.Gc.Gen1} gen1, {s.Gc.Gen2} gen2; every CPU paused {(s.Gc.PauseSeconds * 1000).ToString("F1", s_inv)} ms in all");
        Add("delivery", s.AllAcceptedRan
            ? $"every accepted message ran: {Count(s.Accepted)} accepted, {Count(s.Executed)} run"
            : $"MISMATCH: {Count(s.Accepted)} accepted but {Count(s.Executed)} run");
        if (s.Warnings > 0) Add("warnings", $"{Count(s.Warnings)}; the last: {s.LastWarning}");
        if (s.Trace is { } trace)
            Add("trace", $"{Count(trace.Events)} events ({Count(trace.LostEvents)} older ones overwritten) in {trace.Path}: open it in https://ui.perfetto.dev");
        console.Ansi.Write(table);
    }

    /// <summary>The summary for machines.</summary>
    public static void WriteJson(CliConsole console, DemoSummary summary)
        => console.Out.WriteLine(JsonSerializer.Serialize(summary, DemoJsonContext.Default.DemoSummary));
}
