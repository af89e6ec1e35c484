using System.Runtime.CompilerServices;
using PerCpu.Diagnostics;
using PerCpu.Ipi;
using PerCpu.SoftInterrupts;

namespace PerCpu;

// The CPU's side of the stall watchdog (Diagnostics/StallWatchdog.cs): the per-pass hook, and what the watchdog reads
// from its own thread. The CPU writes its fields with plain stores on its own padded line (OwnerState: PassStamp,
// Phase, Running); the watchdog's reads are racy by design (diagnostics: a stale value delays or skips one report).
public sealed partial class Cpu
{
    /// <summary>Owner, at the top of each pass: the per-pass stamp and the first step's phase. Two plain stores on the owner's line.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void BeginPassForWatchdog()
    {
        Own.PassStamp++;
        Own.Phase = StallPhase.Ipis;
    }

    /// <summary>Watchdog: the step this CPU is in.</summary>
    internal StallPhase WatchdogPhase => (StallPhase)Volatile.Read(ref Unsafe.As<StallPhase, byte>(ref Own.Phase));

    /// <summary>
    /// Watchdog: a number that moves whenever this CPU makes progress: a pass begun, a message run (inbox, ring or
    /// direct), a task run, a soft interrupt handler started. Unchanged between two looks while the phase is not idle:
    /// one piece of work has held the CPU for the whole interval.
    /// </summary>
    internal long WatchdogProgress
    {
        get
        {
            long n = Volatile.Read(ref Own.PassStamp) + Volatile.Read(ref Counters.Received) + Volatile.Read(ref Own.TasksRun);
            if (SharedSoftCpu is { } soft)
                foreach (SoftLevelQueue queue in soft.Levels) n += Volatile.Read(ref queue.Count);
            return n;
        }
    }

    /// <summary>Watchdog: the IPI function or task callback started last (a delegate, or a <see cref="Task"/>).</summary>
    internal object? WatchdogRunning => Volatile.Read(ref Own.Running);

    /// <summary>Watchdog: the state of the task started last (stale while an IPI function runs: read it only for a task callback).</summary>
    internal object? WatchdogRunningState => Volatile.Read(ref Own.RunningState);

    /// <summary>Watchdog: the soft interrupt whose handler is on this CPU's stack, if any.</summary>
    internal SoftInterrupt? WatchdogSoftRunning => SharedSoftCpu is { } soft ? Volatile.Read(ref soft.Running) : null;

    /// <summary>
    /// The rings other CPUs created to this one, for the watchdog: it looks at these instead of a column of the ring
    /// matrix, so that a look at an idle runtime of N CPUs costs O(N), not O(N²) (at 256 CPUs the column scans cost
    /// about 3 % of a core on their own). Appended under <see cref="_incomingLock"/> by a source when it creates its
    /// ring (once per pair), copied on write and published with a release store; read by the watchdog.
    /// </summary>
    private IpiRing[] _incomingRings = [];
    private readonly Lock _incomingLock = new();

    /// <summary>A source CPU created <paramref name="ring"/> to this CPU (already published in its row).</summary>
    internal void AddIncomingRing(IpiRing ring)
    {
        lock (_incomingLock)
        {
            IpiRing[] current = _incomingRings;
            var grown = new IpiRing[current.Length + 1];
            current.CopyTo(grown, 0);
            grown[^1] = ring;
            Volatile.Write(ref _incomingRings, grown); // release: the array is complete before the watchdog reads it
        }
    }

    /// <summary>
    /// Watchdog: messages and tasks waiting behind whatever runs now: each incoming ring's published-minus-taken, the
    /// inbox's accepted-minus-done (which counts an inbox function still running), local and posted tasks. Racy.
    /// </summary>
    internal long WatchdogWaiting()
    {
        long n = 0;
        foreach (IpiRing ring in Volatile.Read(ref _incomingRings))
            n += Math.Max(0, Volatile.Read(ref ring.W.Value) - Volatile.Read(ref ring.C.RLocal));
        n += Math.Max(0, Inbox.EnqueuedCount - Inbox.Executed);
        n += _tasks.Count + Math.Max(0, Posts.EnqueuedCount - Posts.DequeuedCount);
        return n;
    }

    /// <summary>
    /// Watchdog: true if this CPU is parked with work it has not drained: a mask bit set (a parked CPU cleared its ring
    /// bits and re-checked before it parked, so a set bit is news since then: a wake in flight, a passive message, or a
    /// lost wake-up) or a ring whose published index is ahead of what it took (a lost wake-up where the sender's bit
    /// was stale). <paramref name="waiting"/>: the published entries not taken.
    /// </summary>
    internal bool WatchdogParkedWithUndrainedWork(out long waiting)
    {
        waiting = 0;
        if (Volatile.Read(ref _state.Value) != StateParked) return false;
        bool any = false;
        for (int w = 0; w < _ipiMask.Length; w++) any |= Volatile.Read(ref _ipiMask[w].Value) != 0;
        foreach (IpiRing ring in Volatile.Read(ref _incomingRings))
        {
            long behind = Volatile.Read(ref ring.W.Value) - Volatile.Read(ref ring.C.RLocal);
            if (behind > 0)
            {
                waiting += behind;
                any = true;
            }
        }
        waiting += Math.Max(0, Inbox.EnqueuedCount - Inbox.Executed);
        return any;
    }

    /// <summary>Tests: true while this CPU's thread is asleep in its parker or its reactor (past its last look for work).</summary>
    internal bool IsAsleep => _parker.IsSleeping || _sleepingInReactor;
}
