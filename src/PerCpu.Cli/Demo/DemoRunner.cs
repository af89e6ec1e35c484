using System.Diagnostics;
using PerCpu.Diagnostics;
using Spectre.Console;

namespace PerCpu.Cli.Demo;

/// <summary>Settings of <c>percpu demo</c> and <c>percpu trace</c>.</summary>
/// <param name="Seconds">How long the workload runs.</param>
/// <param name="Cpus">Virtual CPUs to start.</param>
/// <param name="Json">Print only a JSON summary.</param>
/// <param name="TraceOut">Record a trace into this file (<c>percpu trace</c>), or null.</param>
/// <param name="TraceEvents">Trace ring size per CPU.</param>
internal sealed record DemoOptions(double Seconds, int Cpus, bool Json, string? TraceOut = null, int TraceEvents = 65536);

/// <summary>Runs the demo: starts a runtime and the workload, shows it live (or in plain lines), stops, and sums up.</summary>
internal static class DemoRunner
{
    private static readonly TimeSpan s_liveRefresh = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan s_plainRefresh = TimeSpan.FromSeconds(1);

    /// <summary>0: the run completed and every accepted message ran; 1: it did not.</summary>
    public static async Task<int> RunAsync(DemoOptions options, CliConsole console, CancellationToken cancellationToken)
    {
        TimeSpan duration = TimeSpan.FromSeconds(options.Seconds);
        CpuRuntime runtime = CpuRuntime.Start(new CpuRuntimeOptions { CpuCount = options.Cpus });
        // Warnings (a CPU waiting on another for over a second) go into the summary: printing them would tear the live view.
        long warnings = 0;
        string? lastWarning = null;
        runtime.Warning += (_, e) =>
        {
            Interlocked.Increment(ref warnings);
            Volatile.Write(ref lastWarning, e.Message);
        };
        DemoWorkload? workload = null;
        DemoSample first;
        TimeSpan elapsed;
        CpuTrace? trace = null;
        try
        {
            if (options.TraceOut != null) runtime.StartTrace(options.TraceEvents);
            first = DemoSample.Take(runtime);
            workload = DemoWorkload.Start(runtime);
            var clock = Stopwatch.StartNew();
            if (console.Interactive && !options.Json)
            {
                string title = $"[bold]percpu demo[/]: {runtime.CpuCount} CPUs, threads {(runtime.ThreadsPinned ? "pinned to cores" : "not pinned")}. " +
                    "IPI storms (send, passive, try-send), soft interrupts at every level, cpusync, InvokeAsync, SendToMask.";
                await console.Ansi.Live(DemoView.Live(runtime, first, first, TimeSpan.Zero, duration, title))
                    .AutoClear(false)
                    .Overflow(VerticalOverflow.Ellipsis)
                    .StartAsync(async ctx =>
                    {
                        DemoSample previous = first;
                        while (await NextRefreshAsync(clock, duration, s_liveRefresh, cancellationToken))
                        {
                            DemoSample current = DemoSample.Take(runtime);
                            ctx.UpdateTarget(DemoView.Live(runtime, previous, current, Min(clock.Elapsed, duration), duration, title));
                            previous = current;
                        }
                    });
            }
            else
            {
                DemoSample previous = first;
                while (await NextRefreshAsync(clock, duration, s_plainRefresh, cancellationToken))
                {
                    DemoSample current = DemoSample.Take(runtime);
                    if (!options.Json) console.Out.WriteLine(DemoView.PlainLine(previous, current, Min(clock.Elapsed, duration), duration));
                    previous = current;
                }
            }
            await workload.StopAsync();
            elapsed = clock.Elapsed;
            if (options.TraceOut != null) trace = runtime.StopTrace();
        }
        catch (Exception e)
        {
            await console.Error.WriteLineAsync($"percpu: the demo failed: {e}");
            if (runtime.IsTracing)
            {
                // The trace of a failure is the one most worth having: write it before anything else can go wrong.
                string path = Path.GetFullPath(options.TraceOut!);
                await using (FileStream file = File.Create(path)) runtime.StopTrace().WriteChromeTrace(file);
                await console.Error.WriteLineAsync($"percpu: the trace up to the failure is in {path}");
            }
            if (workload != null)
            {
                try { await workload.StopAsync(); } catch { /* already reported */ }
            }
            await runtime.DisposeAsync();
            return 1;
        }
        await runtime.DisposeAsync();
        DemoSample last = DemoSample.Take(runtime); // after disposal: everything accepted has run

        DemoSummary summary = DemoView.Summarize(runtime, workload, first, last, elapsed) with
        {
            Warnings = Interlocked.Read(ref warnings),
            LastWarning = Volatile.Read(ref lastWarning),
        };
        if (trace != null)
        {
            string path = Path.GetFullPath(options.TraceOut!);
            await using (FileStream file = File.Create(path)) trace.WriteChromeTrace(file);
            summary = summary with { Trace = new TraceInfo(path, trace.Events.Count, trace.LostEvents, Math.Round(trace.Duration.TotalSeconds, 3)) };
        }
        if (options.Json) DemoView.WriteJson(console, summary);
        else DemoView.WriteSummary(console, summary);
        if (!summary.AllAcceptedRan)
        {
            await console.Error.WriteLineAsync($"percpu: {summary.Accepted} messages were accepted but {summary.Executed} ran: please report this as a bug.");
            return 1;
        }
        return 0;
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    /// <summary>Waits until the next refresh. False once the duration is over (after a last refresh at the end) or on Ctrl+C.</summary>
    private static async Task<bool> NextRefreshAsync(Stopwatch clock, TimeSpan duration, TimeSpan refresh, CancellationToken cancellationToken)
    {
        TimeSpan left = duration - clock.Elapsed;
        // A sliver left (the last refresh landed just short of the end): no line for it.
        if (left <= refresh / 10 || cancellationToken.IsCancellationRequested) return false;
        try
        {
            await Task.Delay(left < refresh ? left : refresh, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        return true;
    }
}
