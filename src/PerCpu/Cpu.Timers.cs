using System.Diagnostics;
using System.Runtime.CompilerServices;
using PerCpu.Timers;

namespace PerCpu;

// Timers on this CPU (NetBSD callout(9) run by softclock at the Clock soft-interrupt level): the per-CPU wheel, the
// check in each dispatch pass (the "hardclock" that notices expiry), the softclock handler that fires due callouts,
// Cpu.Delay, and the deadline the idle loop parks until (tickless idle).
public sealed partial class Cpu
{
    /// <summary>Callouts fired per softclock run at most; the rest fire at the next run (softclock reschedules itself), so IPIs are never starved.</summary>
    private const int TimerBatch = 64;

    /// <summary>Pooled <see cref="DelaySource"/>s kept per CPU at most (more concurrent delays than this allocate and are dropped).</summary>
    private const int DelayPoolLimit = 256;

    /// <summary>This CPU's callouts, created by the owner at the first arm (a CPU that never uses a timer has none). Owner only.</summary>
    private TimerWheel? _timers;

    /// <summary>Idle <see cref="DelaySource"/>s, linked through <see cref="DelaySource.NextFree"/>. Owner only.</summary>
    private DelaySource? _delayPool;
    private int _delayPoolCount;

    /// <summary>
    /// Waits <paramref name="delay"/> on this CPU's clock: the returned <see cref="ValueTask"/> completes on this CPU,
    /// after the delay has fully elapsed (never early), processed at <see cref="SoftLevel.Clock"/>; the awaiting code
    /// then resumes as a task of this CPU. Awaited on this CPU, steady state allocates nothing (the operation is pooled).
    /// <para>
    /// Only this CPU may call it (like <see cref="SoftInterrupt.Schedule"/>): a delay that completes on a CPU is only
    /// worth having for code that resumes on that CPU; anywhere else <see cref="Task.Delay(TimeSpan, CancellationToken)"/>
    /// does the same without a hop (or call <see cref="InvokeAsync(Func{ValueTask}, CancellationToken)"/> with a
    /// function that awaits this). Refusing, rather than marshalling silently, keeps a continuation meant for this CPU
    /// from quietly running elsewhere.
    /// </para>
    /// <para>
    /// Disposal: work the runtime waits for (an <see cref="InvokeAsync(Func{ValueTask}, CancellationToken)"/> function)
    /// that awaits a delay keeps the runtime running until the delay completes. A delay nobody the runtime counts is
    /// waiting on (for example one awaited in a task posted with <see cref="Post"/>) does not: when the CPUs stop, it
    /// completes with an <see cref="ObjectDisposedException"/>, its continuation on the thread pool.
    /// </para>
    /// </summary>
    /// <param name="delay">How long; <see cref="TimeSpan.Zero"/> completes at once; <see cref="Timeout.InfiniteTimeSpan"/> waits for the token only.</param>
    /// <param name="cancellationToken">Cancels the delay: it then completes (on this CPU) with an <see cref="OperationCanceledException"/>. Cancelling from any thread is allowed.</param>
    /// <returns>A task that completes on this CPU when the delay has elapsed. Await it once.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative (other than <see cref="Timeout.InfiniteTimeSpan"/>).</exception>
    /// <exception cref="InvalidOperationException">The calling thread is not this CPU.</exception>
    public ValueTask Delay(TimeSpan delay, CancellationToken cancellationToken = default)
    {
        if (delay < TimeSpan.Zero && delay != Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(nameof(delay), delay, "A delay is zero or more, or Timeout.InfiniteTimeSpan.");
        if (t_current != this) throw NotOnThisCpu("Cpu.Delay", "Task.Delay (or InvokeAsync with a function that awaits Cpu.Current.Delay)");
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
        if (delay == TimeSpan.Zero) return ValueTask.CompletedTask;
        long due = delay == Timeout.InfiniteTimeSpan ? long.MaxValue : DueAfter(Stopwatch.GetTimestamp(), delay);
        DelaySource? source = _delayPool;
        if (source != null)
        {
            _delayPool = source.NextFree;
            source.NextFree = null;
            _delayPoolCount--;
        }
        else
        {
            source = new DelaySource(this);
        }
        return source.Start(due, cancellationToken);
    }

    /// <summary>Owner: a <see cref="DelaySource"/> whose result was read on this CPU goes back to the pool (reset by the caller).</summary>
    internal void ReturnDelaySource(DelaySource source)
    {
        if (_delayPoolCount >= DelayPoolLimit) return;
        source.NextFree = _delayPool;
        _delayPool = source;
        _delayPoolCount++;
    }

    /// <summary>The exception for an owner-only timer call made on another thread: names this CPU and the caller.</summary>
    internal InvalidOperationException NotOnThisCpu(string what, string instead)
    {
        Cpu? current = t_current;
        string caller = current == null ? "a thread that is not a CPU" : current.Runtime == Runtime ? $"CPU {current.Id}" : $"CPU {current.Id} of another CpuRuntime";
        return new InvalidOperationException(
            $"{what} belongs to CPU {Id} and must be called on CPU {Id}, but it was called on {caller}. " +
            $"Run the call on CPU {Id} (for example with runtime[{Id}].Post or InvokeAsync), or use {instead}.");
    }

    /// <summary><paramref name="now"/> plus <paramref name="delay"/> in <see cref="Stopwatch"/> units, rounded up (never early), saturating at <see cref="long.MaxValue"/>.</summary>
    internal static long DueAfter(long now, TimeSpan delay)
    {
        double units = Math.Ceiling(delay.Ticks * ((double)Stopwatch.Frequency / TimeSpan.TicksPerSecond));
        if (units >= long.MaxValue - (double)now) return long.MaxValue;
        return now + (long)units;
    }

    // ------------------------------------------------------------------ the wheel (owner only)

    /// <summary>Owner: arms (or re-arms) <paramref name="node"/> for <paramref name="due"/> (NetBSD <c>callout_reset</c>). Allocates nothing once the wheel and the softclock exist.</summary>
    internal void ArmTimer(TimerNode node, long due)
    {
        Debug.Assert(t_current == this);
        TimerWheel wheel = _timers ??= CreateTimers();
        wheel.Add(node, due);
        // The earliest deadline only moves down here; a stop leaves it low (one early look costs a clock read) and the
        // next softclock run recomputes it.
        if (due < Own.NextTimerDeadline) Own.NextTimerDeadline = due;
        IoCounters.TimersArmed = _timers!.Count;
    }

    /// <summary>Owner: disarms <paramref name="node"/> (NetBSD <c>callout_stop</c>); true if it was armed, i.e. it will now never fire.</summary>
    internal bool DisarmTimer(TimerNode node)
    {
        Debug.Assert(t_current == this);
        if (_timers is not { } wheel || !node.IsArmed || !wheel.Remove(node)) return false;
        IoCounters.TimersArmed = wheel.Count;
        return true;
    }

    private TimerWheel CreateTimers()
    {
        // The runtime's softclock handle exists before the first timer can be due.
        _shared.GetSoftClock(Runtime);
        return new TimerWheel();
    }

    /// <summary>
    /// The deadline idle must wake for: the earliest armed timer, or <see cref="long.MaxValue"/> when none is armed, the
    /// runtime has frozen its timers for shutdown (<see cref="CpuRuntime.Shared.TimersFrozen"/>), or the CPU is held by
    /// a cpusync master (it runs no soft interrupts then, so a due timer must not keep it from idling, as for
    /// <see cref="HasWork"/>; the master's release is an IPI, which wakes it). Owner only.
    /// </summary>
    private long TimerDeadline
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            long deadline = Own.NextTimerDeadline;
            return deadline == long.MaxValue || _shared.TimersFrozen || IsInterlocked() ? long.MaxValue : deadline;
        }
    }

    /// <summary>True if a timer is due now (reads the clock only when one is armed). Owner only.</summary>
    private bool TimerDue()
    {
        long deadline = TimerDeadline;
        return deadline != long.MaxValue && Stopwatch.GetTimestamp() >= deadline;
    }

    /// <summary>
    /// In each pass, between the IPIs and the soft interrupts (the kernel's hardclock noticing that a callout is due):
    /// schedules softclock at <see cref="SoftLevel.Clock"/> when the earliest timer is due. The callouts themselves fire
    /// in softclock, after every higher level scheduled in this pass. Costs a field read when no timer is armed.
    /// </summary>
    private bool CheckCallouts()
    {
        if (!TimerDue()) return false;
        ScheduleSoftInterrupt(_shared.SoftClock!);
        return true;
    }

    /// <summary>
    /// Softclock (NetBSD <c>softclock()</c>): fires the due callouts, at most <see cref="TimerBatch"/> per run, and
    /// recomputes the earliest deadline. The time is read here, after any park has returned, so the wheel's "never
    /// early" holds against the clock: a callout fires only once its due timestamp is in the past.
    /// </summary>
    internal void RunCallouts()
    {
        TimerWheel? wheel = _timers;
        if (wheel == null) return;
        // Full fence: this run was counted as accepted (when softclock was scheduled) before we look at the freeze,
        // and the disposer sets the freeze before it counts (Dekker). Either it sees this run unfinished and goes
        // round again, or we see the freeze and fire nothing: no callout starts work after the final check.
        Interlocked.MemoryBarrier();
        if (_shared.TimersFrozen) return;
        long now = Stopwatch.GetTimestamp();
        long fired = wheel.Fired;
        wheel.Advance(now, TimerBatch);
        IoCounters.TimersFired += wheel.Fired - fired;
        IoCounters.TimersArmed = wheel.Count;
        Own.NextTimerDeadline = wheel.TryGetNextDeadline(out long next) ? next : long.MaxValue;
        // The budget ran out (or a callout re-armed into the past): more next pass, after the IPIs.
        if (Own.NextTimerDeadline <= now) ScheduleSoftInterrupt(_shared.SoftClock!);
    }

    /// <summary>Softclock: runs one <see cref="CpuTimer"/>'s callback; an exception is counted and reported, and the other callouts still fire.</summary>
    internal void RunTimerCallback(Action<object?> callback, object? state)
    {
        Own.Running = callback; // stall watchdog: a callback that runs long is named
        try
        {
            callback(state);
        }
        catch (Exception e)
        {
            ReportException(e, ExternalSource);
        }
    }

    /// <summary>
    /// Owner, as its thread exits for good: every timer still armed is dropped (<see cref="TimerNode.Abandon"/>): armed
    /// timers do not keep a runtime alive, and a pending <see cref="Delay"/> completes with an
    /// <see cref="ObjectDisposedException"/>.
    /// </summary>
    private void AbandonTimers()
    {
        TimerWheel? wheel = _timers;
        if (wheel == null) return;
        while (wheel.TakeAny() is { } node)
        {
            try
            {
                node.Abandon();
            }
            catch (Exception e)
            {
                ReportException(e, ExternalSource);
            }
        }
        Own.NextTimerDeadline = long.MaxValue;
    }

    /// <summary>Armed timers on this CPU (including expired ones not fired yet). Owner, or tests once it is idle.</summary>
    internal int ArmedTimers => _timers?.Count ?? 0;

    /// <summary>Tests, from another thread: <see cref="ArmedTimers"/> read racily (a stale value is fine for polling).</summary>
    internal int ArmedTimersRacy => Volatile.Read(ref _timers)?.Count ?? 0;

    /// <summary>
    /// The longest single park: the parker's limit (a futex takes any timeout, the managed fallback at most
    /// <see cref="int.MaxValue"/> ms). A farther deadline only costs one early wake, after which the CPU parks again.
    /// </summary>
    private static readonly long s_maxParkUnits = (long)(TimeSpan.FromMilliseconds(int.MaxValue - 1).TotalSeconds * Stopwatch.Frequency);

    /// <summary>
    /// How long idle may park (tickless): until the earliest timer, or forever (<see cref="Timeout.InfiniteTimeSpan"/>)
    /// when none is armed. False when a timer is already due (do not park). Rounds up: waking a little late is harmless,
    /// waking early costs one more park.
    /// </summary>
    private bool TryGetParkTimeout(out TimeSpan timeout)
    {
        long deadline = TimerDeadline;
        if (deadline == long.MaxValue)
        {
            timeout = Timeout.InfiniteTimeSpan;
            return true;
        }
        long left = deadline - Stopwatch.GetTimestamp();
        if (left <= 0)
        {
            timeout = default;
            return false;
        }
        if (left > s_maxParkUnits) left = s_maxParkUnits;
        timeout = TimeSpan.FromTicks((long)Math.Ceiling(left * ((double)TimeSpan.TicksPerSecond / Stopwatch.Frequency)));
        return true;
    }
}
