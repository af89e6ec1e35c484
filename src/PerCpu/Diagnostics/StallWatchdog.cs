using System.Diagnostics;
using System.Reflection;
using System.Runtime.CompilerServices;

namespace PerCpu.Diagnostics;

/// <summary>One stall the watchdog reported (tests read these from <see cref="StallWatchdog.CheckNow(long, List{StallReport}?)"/>).</summary>
/// <param name="Cpu">The CPU.</param>
/// <param name="Phase">Its dispatch step; <see cref="StallPhase.Idle"/> for a parked CPU that was not draining.</param>
/// <param name="Running">What it runs: a method name, a task id, a soft interrupt and its handler's method.</param>
/// <param name="Elapsed">How long, at least, it has made no progress (or, parked, has left published work undrained).</param>
/// <param name="Waiting">Messages and tasks waiting behind it (racy).</param>
/// <param name="Rewoken">True for a parked CPU that was not draining its published work: the watchdog woke it again.</param>
/// <param name="Message">The sentence raised on <see cref="CpuRuntime.Warning"/>.</param>
internal sealed record StallReport(Cpu Cpu, StallPhase Phase, string Running, TimeSpan Elapsed, long Waiting, bool Rewoken, string Message);

/// <summary>
/// The stall detector (Seastar's "reactor stalled", Linux's soft-lockup report): reports, once per stall, a CPU kept
/// from its dispatch loop for longer than <see cref="CpuRuntimeOptions.StallThreshold"/> by one function, soft interrupt
/// handler, task or cpusync hold; and wakes again a parked CPU that has left published work undrained for that long
/// (DragonFly's "target not draining" re-send).
/// <para>
/// Cost on the CPUs: nothing but plain stores on their own padded line (<see cref="Cpu.OwnerState"/>): a pass stamp
/// and a phase per dispatch step, and a reference to the function or task callback started (counters the loop keeps
/// anyway, Received and TasksRun, also count as progress). Everything else (reading those fields, naming the method,
/// counting what waits, building the message) happens here, on the watchdog's side, and only the naming and counting
/// only when it reports.
/// </para>
/// <para>
/// Who writes what: the CPU writes <see cref="Cpu.OwnerState.PassStamp"/>, <see cref="Cpu.OwnerState.Phase"/> and
/// <see cref="Cpu.OwnerState.Running"/>; the watchdog reads them with no synchronization (a stale read delays a report by
/// one period or, for a phase, may name the step just left: diagnostics, never a correctness question). The watchdog
/// alone writes its per-CPU memory (<see cref="_watch"/>) and the CPUs' <see cref="CpuCounters.Stalls"/>, under
/// <see cref="_lock"/>, which also keeps two timer callbacks from overlapping.
/// </para>
/// <para>
/// A thread of its own (not a CPU: a stalled CPU cannot hold up its own report) that looks every half threshold, so a
/// stall is seen between one and one and a half thresholds after it began. It was a <see cref="Timer"/>, which costs no
/// thread, but each tick then also woke a thread-pool worker that spins before it sleeps: about 3 % of a core on the
/// test VM, the largest idle cost left once idle CPUs became tickless (issue 12). The thread sleeps in a wait with a
/// timeout: one wake per period, and it does not depend on the thread pool (a starved pool no longer delays reports).
/// </para>
/// </summary>
internal sealed class StallWatchdog : IDisposable
{
    private readonly CpuRuntime _runtime;
    private readonly long _thresholdTicks;
    private readonly TimeSpan _threshold;
    /// <summary>Set by <see cref="Dispose"/>: the watchdog thread's sleep ends and it exits.</summary>
    private readonly ManualResetEventSlim? _stop;

    /// <summary>Time between looks: half the threshold, at least 1 ms.</summary>
    private readonly TimeSpan _period;

    /// <summary>Serializes checks (timer callbacks, tests' <see cref="CheckNow()"/>) and guards <see cref="_watch"/> and <see cref="_disposed"/>.</summary>
    private readonly Lock _lock = new();

    /// <summary>What the watchdog remembers about each CPU (by id; under <see cref="_lock"/>).</summary>
    private readonly CpuWatch[] _watch;

    /// <summary>Set by <see cref="Dispose"/>: no report after it (under <see cref="_lock"/>).</summary>
    private bool _disposed;

    private struct CpuWatch
    {
        /// <summary>The CPU's progress number at the last look, and when it was first seen at that value.</summary>
        public long Progress, Since;

        /// <summary>When the CPU was first seen parked with undrained work at this progress, or 0.</summary>
        public long UndrainedSince;

        /// <summary>True once this progress value (this stall) was reported: once per stall.</summary>
        public bool Reported, Seen;
    }

    private StallWatchdog(CpuRuntime runtime, TimeSpan threshold, bool startTimer)
    {
        _runtime = runtime;
        _threshold = threshold;
        _thresholdTicks = Math.Max(1, (long)(threshold.TotalSeconds * Stopwatch.Frequency));
        _watch = new CpuWatch[runtime.CpuCount];
        if (startTimer)
        {
            TimeSpan period = threshold / 2 > TimeSpan.FromMilliseconds(1) ? threshold / 2 : TimeSpan.FromMilliseconds(1);
            // A thread of its own that sleeps between looks, not a System.Threading.Timer: each timer tick queues a
            // thread-pool work item, and the pool worker that runs it spins before it sleeps again, which cost about 3 %
            // of a core at 40 looks a second on the 2-vCPU test VM, whatever the CPU count (measured for issue 12:
            // an idle runtime of 256 CPUs went from 3.1-3.7 % to ~0.3 % with this thread). UnsafeStart: no execution
            // context, so the looks carry none of the creating thread's AsyncLocals.
            _period = period;
            _stop = new ManualResetEventSlim(false, spinCount: 0);
            var thread = new Thread(static s => ((StallWatchdog)s!).Loop(), maxStackSize: 256 * 1024)
            {
                IsBackground = true,
                Name = $"{runtime.Internals.Options.ThreadName}/watchdog",
            };
            thread.UnsafeStart(this);
        }
    }

    /// <summary>
    /// The runtime's watchdog, or null when <see cref="CpuRuntimeOptions.StallThreshold"/> turns it off. Its timer runs
    /// unless the runtime is manual (no threads) or a test asked to drive it with <see cref="CheckNow()"/>.
    /// </summary>
    internal static StallWatchdog? Start(CpuRuntime runtime)
    {
        CpuRuntime.Shared shared = runtime.Internals;
        CpuRuntimeOptions options = shared.Options;
        if (!options.StallWatchdogEnabled) return null;
        return new StallWatchdog(runtime, options.StallThreshold, startTimer: !shared.Manual && options.StallWatchdogTimer);
    }

    /// <summary>The watchdog thread: a look every <see cref="_period"/> until <see cref="Dispose"/>.</summary>
    private void Loop()
    {
        while (!_stop!.Wait(_period)) OnTimer();
    }

    private void OnTimer()
    {
        try
        {
            CheckNow(Stopwatch.GetTimestamp(), null);
        }
        catch
        {
            // A timer callback that throws takes the process down; a diagnostic must never do that. Warning handlers
            // are already shielded (RaiseWarning); this is for anything unforeseen.
        }
    }

    /// <summary>Looks at every CPU once, now (tests drive the watchdog with this instead of waiting for the timer).</summary>
    /// <returns>How many reports this look made.</returns>
    internal int CheckNow() => CheckNow(Stopwatch.GetTimestamp(), null);

    /// <summary>
    /// Looks at every CPU once at time <paramref name="now"/> (<see cref="Stopwatch"/> ticks; tests pass a fake clock so
    /// that nothing depends on how fast the machine is), adding what it reports to <paramref name="reports"/>.
    /// </summary>
    /// <returns>How many reports this look made.</returns>
    internal int CheckNow(long now, List<StallReport>? reports)
    {
        int made = 0;
        lock (_lock)
        {
            if (_disposed) return 0;
            IReadOnlyList<Cpu> cpus = _runtime.Cpus;
            for (int i = 0; i < cpus.Count; i++)
            {
                StallReport? report = Check(cpus[i], ref _watch[i], now);
                if (report == null) continue;
                made++;
                reports?.Add(report);
                Publish(report);
            }
        }
        return made;
    }

    /// <summary>One CPU: a new progress value starts a new watch; the same value past the threshold is a stall (or, parked, a CPU not draining).</summary>
    private StallReport? Check(Cpu cpu, ref CpuWatch watch, long now)
    {
        long progress = cpu.WatchdogProgress;
        if (!watch.Seen || progress != watch.Progress)
        {
            watch = new CpuWatch { Progress = progress, Since = now, Seen = true };
            return null;
        }
        if (watch.Reported) return null; // once per stall: this progress value was reported already
        StallPhase phase = cpu.WatchdogPhase;
        if (phase != StallPhase.Idle)
        {
            watch.UndrainedSince = 0;
            if (now - watch.Since < _thresholdTicks) return null;
            watch.Reported = true;
            return StallOf(cpu, phase, Elapsed(now - watch.Since));
        }
        // Idle is never a stall; but a parked CPU that leaves published work undrained needs another wake.
        if (!cpu.WatchdogParkedWithUndrainedWork(out long waiting))
        {
            watch.UndrainedSince = 0;
            return null;
        }
        if (watch.UndrainedSince == 0)
        {
            watch.UndrainedSince = now;
            return null;
        }
        if (now - watch.UndrainedSince < _thresholdTicks) return null;
        watch.Reported = true;
        bool woke = cpu.TryWake(); // the second wake; false if a sender (or the tick) woke it meanwhile
        TimeSpan elapsed = Elapsed(now - watch.UndrainedSince);
        string message =
            $"CPU {cpu.Id} has been parked for {elapsed.TotalMilliseconds:F0} ms with {waiting} message(s) published to it and not drained " +
            "(a lost wake-up, or passive messages waiting for a TickInterval longer than StallThreshold): " +
            (woke ? "woken again." : "it was woken meanwhile.");
        return new StallReport(cpu, StallPhase.Idle, "(parked)", elapsed, waiting, true, message);
    }

    private static TimeSpan Elapsed(long ticks) => TimeSpan.FromSeconds((double)ticks / Stopwatch.Frequency);

    private StallReport StallOf(Cpu cpu, StallPhase phase, TimeSpan elapsed)
    {
        string running = DescribeRunning(cpu, phase);
        long waiting = cpu.WatchdogWaiting();
        string where = phase switch
        {
            StallPhase.Ipis => "an IPI function",
            StallPhase.SoftInterrupts => "its soft interrupt step",
            StallPhase.Tasks => "a task",
            StallPhase.CpuSyncHold => "a cpusync hold (a master's Interlock or RunOnAll keeps it waiting)",
            _ => phase.ToString(),
        };
        string message =
            $"CPU {cpu.Id} has been kept from its dispatch loop for {elapsed.TotalMilliseconds:F0} ms by {where}, running {running}; " +
            $"{waiting} message(s) and task(s) wait behind it. Move long or blocking work out of IPI functions, soft interrupt " +
            $"handlers and tasks (await instead of blocking, or run it on the thread pool); the threshold is CpuRuntimeOptions.StallThreshold ({_threshold.TotalMilliseconds:F0} ms).";
        return new StallReport(cpu, phase, running, elapsed, waiting, false, message);
    }

    /// <summary>What the CPU runs, named for a reader (watchdog side only: reflection on a delegate is not for the hot path).</summary>
    private static string DescribeRunning(Cpu cpu, StallPhase phase)
    {
        if (phase == StallPhase.SoftInterrupts && cpu.WatchdogSoftRunning is { } soft)
            return $"{soft} ({MethodName(soft.Handler)})";
        object? running = cpu.WatchdogRunning;
        switch (running)
        {
            case Action<object?, long> ipi:
                return MethodName(ipi); // an IPI function (RunningState belongs to an earlier task)
            case Task t:
                return $"task {t.Id}";
            case null:
                return "(nothing recorded)";
        }
        // A task callback. An await continuation's callback belongs to the runtime; its state names the method.
        object? state = cpu.WatchdogRunningState;
        if (state is Delegate continuation) return MethodName(continuation);
        if (state != null && AsyncMethodName(state.GetType()) is { } async) return async;
        return running is Delegate d ? MethodName(d) : running.GetType().FullName ?? "?";
    }

    /// <summary>
    /// For the runtime's box around an async method's state machine (a generic type with the state machine among its
    /// arguments; compiler-generated "&lt;Method&gt;d__N", nested in the type that declares Method): "Namespace.Type.Method (async)".
    /// </summary>
    private static string? AsyncMethodName(Type box)
    {
        if (!box.IsGenericType) return null;
        foreach (Type argument in box.GetGenericArguments())
        {
            if (!typeof(IAsyncStateMachine).IsAssignableFrom(argument)) continue;
            string name = argument.Name;
            int close = name.IndexOf('>');
            string method = name.StartsWith('<') && close > 1 ? name[1..close] : name;
            return $"{argument.DeclaringType?.FullName}.{method} (async)";
        }
        return null;
    }

    /// <summary>
    /// "Namespace.Type.Method" of a delegate; for an await continuation (its target is the async state machine's box),
    /// the async method it resumes: "Namespace.Type.Method (async)".
    /// </summary>
    internal static string MethodName(Delegate d)
    {
        if (d.Target is { } target && AsyncMethodName(target.GetType()) is { } async) return async;
        MethodInfo m = d.Method;
        return $"{m.DeclaringType?.FullName}.{m.Name}";
    }

    /// <summary>
    /// Counter, warning event (which the event source forwards as a Warning) and the structured Stall event. Under
    /// <see cref="_lock"/>, on the timer's pool thread: a <see cref="CpuRuntime.Warning"/> handler delays the next look
    /// while it runs (keep it to a log line), and no report follows <see cref="Dispose"/>.
    /// </summary>
    private void Publish(StallReport report)
    {
        CpuCounters counters = report.Cpu.Counters;
        Volatile.Write(ref counters.Stalls, counters.Stalls + 1); // the watchdog is its only writer (under _lock)
        _runtime.RaiseWarning(report.Cpu, report.Message);
        PerCpuEventSource log = PerCpuEventSource.Log;
        if (log.IsEnabled())
            log.Stall(_runtime.DiagnosticsId, report.Cpu.Id, report.Phase.ToString(), report.Running,
                (long)report.Elapsed.TotalMilliseconds, report.Waiting, report.Rewoken);
    }

    /// <summary>Stops the timer; no report is made after this returns (a callback in flight finds <see cref="_disposed"/> set).</summary>
    public void Dispose()
    {
        _stop?.Set(); // the thread exits at its next wake (it is a background thread: it never holds the process)
        lock (_lock) _disposed = true;
    }
}
