using System.Diagnostics;
using PerCpu.Sync;

namespace PerCpu;

// CPU synchronization (lwkt_cpusync_*), the per-CPU side: the cpusync slot a held CPU polls, the claim word masters
// take, and the dispatch loop's hooks. The master side is Sync/CpuSync.cs.
public sealed partial class Cpu
{
    /// <summary>
    /// The sync holding this CPU, or null: the seed's <c>gd_cpusyncq</c>, a single slot here because masters claim a
    /// CPU before they send it anything, so at most one sync holds it at a time. Owner thread only.
    /// </summary>
    private CpuSync? _cpuSyncHeld;

    /// <summary>Holds begun and ended on this CPU (monotonic; the owner writes with release, the shutdown check reads).</summary>
    private long _cpuSyncsAccepted, _cpuSyncsFinished;

    /// <summary>
    /// The sync that has claimed this CPU, or null. Taken by a master with a CAS (any thread), given back with a CAS by
    /// that master or, when it abandoned the sync, by this CPU once it is done with it.
    /// </summary>
    private CpuSync? _cpuSyncClaim;

    /// <summary>The sync this CPU masters, from the start of its interlock to the end of its deinterlock (owner only).</summary>
    internal CpuSync? CpuSyncMaster;

    /// <summary>This CPU's reusable master object (owner only): one suffices, nesting is refused. Replaced after a failed sync.</summary>
    private CpuSync? _cpuSyncCache;

    /// <summary>True while the owner waits in <see cref="HoldUntilReleased"/> (owner only): polls nested in it poll once.</summary>
    private bool _cpuSyncSpinning;

    /// <summary>
    /// Polls the cpusync slot (the seed's <c>lwkt_cpusync_remote2</c>, run from <c>lwkt_process_ipiq</c> after the
    /// rings). Released: run the function, re-acknowledge, resume. Still held: at the top of the dispatch loop, return
    /// and let <see cref="RunPass"/> skip soft interrupts and tasks (the CPU idles and may park; the master wakes it);
    /// nested in a wait (user code is suspended on this stack, for example a task in <see cref="WaitFor"/>), stay
    /// here draining IPIs until released, as the seed loops in <c>lwkt_process_ipiq</c>, so that the suspended code
    /// cannot resume while held. The seed's <c>td_cscount</c> rule (a master does not loop on its own queue) holds
    /// without a check: once a master has claimed its own CPU nobody else can hold it.
    /// </summary>
    private bool ProcessCpuSyncQueue()
    {
        CpuSync? sync = _cpuSyncHeld;
        if (sync == null) return false;
        int state = sync.StateOf(Id);
        if (state == CpuSync.Released)
        {
            FinishCpuSync(sync);
            return true;
        }
        // Running: we are inside its function (a nested poll must neither re-run it nor wait for ourselves).
        if (state != CpuSync.Held || Own.WaitDepth == 0 || _cpuSyncSpinning) return false;
        HoldUntilReleased(sync);
        return true;
    }

    /// <summary>True if the cpusync slot has progress to make (its master released it): Idle must not park then.</summary>
    private bool HasCpuSyncWork() => _cpuSyncHeld is { } sync && sync.StateOf(Id) == CpuSync.Released;

    /// <summary>True while this CPU is held by a cpusync master (it must run IPIs only: no soft interrupts, no tasks).</summary>
    private bool IsInterlocked() => _cpuSyncHeld != null;

    /// <summary>Holds accepted (for the shutdown quiescence check: a held CPU owes its master a re-acknowledgement).</summary>
    private long AcceptedCpuSyncWork() => Volatile.Read(ref _cpuSyncsAccepted);

    /// <summary>Holds ended, for the shutdown quiescence check.</summary>
    private long FinishedCpuSyncWork() => Volatile.Read(ref _cpuSyncsFinished);

    private void HoldUntilReleased(CpuSync sync)
    {
        _cpuSyncSpinning = true;
        Diagnostics.StallPhase phase = Own.Phase; // stall watchdog
        Own.Phase = Diagnostics.StallPhase.CpuSyncHold; // stall watchdog
        try
        {
            var spinner = new SpinWait();
            while (_cpuSyncHeld == sync && sync.StateOf(Id) == CpuSync.Held)
            {
                ProcessIpis(); // concurrent masters' remote1 and everyone's messages still run; may finish the sync
                FlushAll();
                spinner.SpinOnce(sleep1Threshold: -1); // yields when the machine is oversubscribed, never sleeps
            }
        }
        finally
        {
            _cpuSyncSpinning = false;
            Own.Phase = phase; // stall watchdog
        }
        if (_cpuSyncHeld == sync && sync.StateOf(Id) == CpuSync.Released) FinishCpuSync(sync);
    }

    /// <summary>Target, in <c>remote1</c> (seed: <c>lwkt_cpusync_remote1</c>): acknowledge and hold.</summary>
    internal void AcceptCpuSync(CpuSync sync)
    {
        if (!sync.TryAcknowledge(Id)) return; // the master gave up before we got here
        Debug.Assert(_cpuSyncHeld == null, "claims guarantee one holder at a time");
        _cpuSyncHeld = sync;
        Volatile.Write(ref _cpuSyncsAccepted, _cpuSyncsAccepted + 1);
    }

    /// <summary>Target, once released: run the function, end the hold, re-acknowledge (seed: <c>lwkt_cpusync_remote2</c>).</summary>
    private void FinishCpuSync(CpuSync sync)
    {
        Exception? error = sync.RunFunction(Id);
        _cpuSyncHeld = null;
        // Before the re-acknowledgement: an outside master may return and dispose the runtime as soon as it sees it.
        Volatile.Write(ref _cpuSyncsFinished, _cpuSyncsFinished + 1);
        if (sync.Complete(Id, error, out Exception? unclaimed))
        {
            // The master gave up (timeout): nobody waits for us, so free our claim and report the error ourselves.
            ReleaseCpuSyncClaim(sync);
            if (unclaimed != null) ReportException(unclaimed, ExternalSource);
        }
    }

    /// <summary>Throws unless this CPU may start a synchronization now (not held, not already mastering one).</summary>
    internal void CheckCanMasterCpuSync()
    {
        if (_cpuSyncHeld is { } held)
            throw new InvalidOperationException(held.StateOf(Id) == CpuSync.Running
                ? $"CPU {Id} is running a cpusync function: it cannot start another synchronization from inside one (its master is waiting for this function to return). " +
                  "Post the work as a task; it runs after the synchronization."
                : $"CPU {Id} is held by another master's Interlock or RunOnAll (it runs only IPIs until released), so it cannot start a synchronization: " +
                  "that could wait for the very master that holds it. Post the work as a task (or use RunOnAllAsync); it runs once the CPU is released.");
        if (CpuSyncMaster != null)
            throw new InvalidOperationException(
                $"CPU {Id} is already inside a cpusync scope (Interlock or RunOnAll, or the function it runs): a nested interlock would wait for itself. " +
                "Do the work inside the open scope, or after it is disposed.");
    }

    /// <summary>This CPU's master object, reused from one sync to the next (owner only).</summary>
    internal CpuSync RentCpuSync() => _cpuSyncCache ??= new CpuSync(Runtime);

    /// <summary>Master: the sync is over (or abandoned: then the object is dropped, a late message may still read it).</summary>
    internal void EndCpuSyncMaster(CpuSync sync)
    {
        if (CpuSyncMaster == sync) CpuSyncMaster = null;
        if (sync.IsAbandoned && _cpuSyncCache == sync) _cpuSyncCache = null;
    }

    /// <summary>Master (any thread): claims this CPU for <paramref name="sync"/>. True if it holds the claim (already or now).</summary>
    internal bool TryClaimCpuSync(CpuSync sync)
        // CAS: a full fence, so whatever the previous owner wrote before its release is visible to the new owner.
        => Volatile.Read(ref _cpuSyncClaim) == sync || Interlocked.CompareExchange(ref _cpuSyncClaim, sync, null) == null;

    /// <summary>Gives the claim back if <paramref name="sync"/> holds it (any thread; a full fence).</summary>
    internal void ReleaseCpuSyncClaim(CpuSync sync) => Interlocked.CompareExchange(ref _cpuSyncClaim, null, sync);

    /// <summary>The warning/timeout check of a wait on this CPU by a thread that is not a CPU (it has no IPIs to drain).</summary>
    internal void CheckCpuSyncWait(long start, ref bool warned, string what, long lag)
        => CheckWait(start, ref warned, ExternalSource, WaitReason.Custom, 0, what, lag);
}
