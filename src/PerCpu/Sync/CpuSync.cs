using System.Diagnostics;
using System.Runtime.ExceptionServices;
using PerCpu.Diagnostics;

namespace PerCpu.Sync;

/// <summary>
/// One CPU synchronization (the seed's <c>struct lwkt_cpusync</c>): a master quiesces the CPUs of a mask
/// (<see cref="Interlock"/>: <c>lwkt_cpusync_interlock</c>), changes what they read, then lets them go, each running
/// the function once (<see cref="Deinterlock"/>: <c>lwkt_cpusync_deinterlock</c>).
/// <para>
/// Per target CPU the handshake is one state word in <see cref="_slots"/> (the seed's <c>cs_mack</c> bit, widened so
/// that a master can also abandon a target it never heard from): the master writes <see cref="Sent"/> and sends
/// <see cref="s_remote1"/>; the target acknowledges (<see cref="Held"/>) and from then on runs only IPIs; the master
/// writes <see cref="Released"/>; the target runs the function (<see cref="Running"/>) and re-acknowledges
/// (<see cref="Done"/>), after which it never touches this object again ("cs can be ripped out at this point").
/// </para>
/// <para>
/// Claims (not in the seed): before it sends anything a master claims every CPU of the mask, and its own CPU, in
/// ascending id order, waiting (and, on a CPU, draining its IPIs) while another master holds one. So two syncs whose
/// CPU sets overlap never run at the same time, which is what a user of a stop-the-world scope expects (in the seed a
/// master may acknowledge another master and then run its own critical section while "held"); the global order makes
/// the claims deadlock-free; and a CPU is held by at most one sync at a time, so its cpusync queue is a single slot.
/// </para>
/// </summary>
[DebuggerDisplay("cpusync {_mask}, master {_master}")]
internal sealed class CpuSync
{
    // Target states (one per CPU id in _slots). Master writes Sent, Released, Abandoned; the target writes Held, Running, Done.
    internal const int Idle = 0, Sent = 1, Held = 2, Released = 3, Running = 4, Done = 5, Abandoned = 6;

    internal const string ClaimWhat = "a cpusync claim: another master's Interlock scope or RunOnAll holds that CPU";
    internal const string AckWhat = "a cpusync acknowledgement: that CPU has not processed its IPIs";
    internal const string DoneWhat = "the cpusync function on that CPU";

    /// <summary>The seed's <c>lwkt_cpusync_remote1</c>: the message a master sends to each target.</summary>
    private static readonly Action<object?, long> s_remote1 = static (sync, _) => Cpu.Current!.AcceptCpuSync((CpuSync)sync!);

    /// <summary>Outside masters of the current logical flow, to refuse a nested interlock (CPU masters are tracked on the CPU).</summary>
    private static readonly AsyncLocal<CpuSync?> s_outsideScope = new();

    private readonly CpuRuntime _runtime;
    private readonly Cpu[] _cpus;

    /// <summary>Handshake state by CPU id (see the class comment for who writes which state). Always with Volatile/Interlocked.</summary>
    private readonly int[] _slots;

    /// <summary>What each CPU's function threw, by id: written by that CPU before its <see cref="Done"/> (release), read by the master after it.</summary>
    private readonly Exception?[] _errors;

    /// <summary>The CPU that masters this sync, or null for a thread that is not a CPU. Set by the master before anything is sent.</summary>
    private Cpu? _master;

    // Request: written by the master before the sends (ordered by the ring or inbox publication), read by targets.
    private CpuMask _mask;
    private Action<object?>? _func;
    private object? _state;

    /// <summary>Set by the master before it releases targets from an interlock that failed: they resume without running the function.</summary>
    private bool _skipFunc;

    /// <summary>Set (with a full fence) by a master that gave up on this sync: targets that finish later release their own claim. Never cleared.</summary>
    private int _abandoned;

    /// <summary>Non-zero while a scope is open: the token the scope carries. Closed with a CAS so a scope closes once.</summary>
    private int _openToken;

    /// <summary>The last token handed out (master only).</summary>
    private int _lastToken;

    /// <summary>Number of target CPUs (mask without the master's own CPU) of the open sync (master only).</summary>
    private int _targetCount;

    internal CpuSync(CpuRuntime runtime)
    {
        _runtime = runtime;
        _cpus = runtime.Internals.Cpus;
        _slots = new int[_cpus.Length];
        _errors = new Exception?[_cpus.Length];
    }

    /// <summary>True once a master gave up on this sync; such an object is never reused.</summary>
    internal bool IsAbandoned => Volatile.Read(ref _abandoned) != 0;

    /// <summary>The state of target <paramref name="cpu"/> (acquire: pairs with the writer's release).</summary>
    internal int StateOf(int cpu) => Volatile.Read(ref _slots[cpu]);

    // ------------------------------------------------------------------ master side

    /// <summary>
    /// Throws if the calling thread may not start a synchronization now; returns the calling CPU (or null for a thread
    /// that is not a CPU of this runtime).
    /// </summary>
    internal static Cpu? CheckCanStart(CpuRuntime runtime)
    {
        Cpu? self = Cpu.Current;
        if (self != null && self.Runtime != runtime)
            throw new InvalidOperationException(
                $"CPU {self.Id} of another CpuRuntime cannot interlock CPUs of this one: it would block its own runtime. " +
                "Call from a thread that is not a CPU (for example with Task.Run), or keep the work in one runtime.");
        if (self != null)
        {
            self.CheckCanMasterCpuSync();
            return self;
        }
        if (runtime.Internals.Disposing)
            throw new ObjectDisposedException(nameof(CpuRuntime), "The CpuRuntime is disposed (or being disposed) and accepts no new synchronization from outside its CPUs.");
        if (s_outsideScope.Value is { } outer && Volatile.Read(ref outer._openToken) != 0)
            throw new InvalidOperationException(
                $"This thread is already inside a cpusync scope (Interlock of {outer._mask}): a nested interlock could wait for itself. " +
                "Do the work inside the open scope, or dispose it first.");
        return null;
    }

    /// <summary>
    /// Claims the CPUs, sends <c>remote1</c> to the others in the mask and waits until each has acknowledged (seed:
    /// <c>lwkt_cpusync_interlock</c>). On a CPU the waits keep draining its own IPIs, so a master that another master
    /// is interlocking acknowledges it rather than deadlocking. Returns the token of the open scope. On failure
    /// (timeout, disposal) every CPU already held is let go and the exception propagates.
    /// </summary>
    internal int Interlock(Cpu? self, CpuMask mask, Action<object?>? func, object? state)
    {
        Debug.Assert(Volatile.Read(ref _openToken) == 0 && !IsAbandoned);
        _master = self;
        _mask = mask;
        _func = func;
        _state = state;
        _skipFunc = false;
        _targetCount = 0;
        if (self != null) self.CpuSyncMaster = this;
        Cpu[] cpus = _cpus;
        int selfId = self?.Id ?? -1;
        try
        {
            // Ascending order over mask + self: a global order, so overlapping masters cannot wait on each other in a cycle.
            for (int id = 0; id < cpus.Length; id++)
            {
                if (id != selfId && !mask.Contains(id)) continue;
                var claim = new ClaimCondition(cpus[id], this);
                Wait(ref claim, cpus[id], ClaimWhat);
            }

            int targets = 0;
            foreach (int id in mask)
            {
                if (id == selfId) continue;
                // Release (the send publishes it): the target's CAS Sent -> Held must find Sent.
                Volatile.Write(ref _slots[id], Sent);
                targets++;
            }
            _targetCount = targets;
            if (targets > 0)
            {
                // The seed counts a cpusync only when there are other CPUs to interlock (ipiq_cscount).
                if (self != null)
                {
                    self.Counters.CpuSyncs++;
                    self.Trace?.Record(TraceEvent.SyncStart, self.Id, -1, null, (long)mask.Word(0));
                }
                else
                {
                    Interlocked.Increment(ref _runtime.Internals.External.CpuSyncs);
                }
                foreach (int id in mask)
                    if (id != selfId) cpus[id].Send(s_remote1, this);
                foreach (int id in mask)
                {
                    if (id == selfId) continue;
                    var acked = new StateCondition(this, id, Held);
                    Wait(ref acked, cpus[id], AckWhat);
                }
            }
        }
        catch
        {
            Abandon(funcReleased: false);
            throw;
        }
        int token = ++_lastToken;
        if (token == 0) token = ++_lastToken;
        Volatile.Write(ref _openToken, token);
        if (self == null) s_outsideScope.Value = this;
        return token;
    }

    /// <summary>
    /// Closes the scope with token <paramref name="token"/> (seed: <c>lwkt_cpusync_deinterlock</c>): releases every
    /// target, runs the function here if the master is a CPU in the mask, waits until every target has run it and
    /// resumed, then gives up the claims. A second close of the same scope does nothing.
    /// </summary>
    /// <returns>True if this call closed the scope; false if it was already closed.</returns>
    internal bool Deinterlock(int token)
    {
        Cpu? master = _master;
        if (master != null && Cpu.Current != master)
        {
            if (Volatile.Read(ref _openToken) != token) return false;
            throw new InvalidOperationException(
                $"This cpusync scope was opened on CPU {master.Id} and must be disposed there: CPU {master.Id} runs the function and waits for the others. " +
                "Do not await (or leave the CPU) inside a scope; keep it short and synchronous.");
        }
        if (Interlocked.CompareExchange(ref _openToken, 0, token) != token) return false;
        if (master == null && s_outsideScope.Value == this) s_outsideScope.Value = null;

        Cpu[] cpus = _cpus;
        int selfId = master?.Id ?? -1;
        try
        {
            // Seed: clear cs_mack (each target sees its bit cleared), then run the function here, then wait.
            foreach (int id in _mask)
            {
                if (id == selfId) continue;
                // Full fence: Released is visible before we read the target's park state (pairs with Idle's Parked-store, fence, HasWork).
                Interlocked.Exchange(ref _slots[id], Released);
                if (cpus[id].TryWake() && master != null) master.Counters.WakesSent++;
            }
            if (master != null && _func != null && _mask.Contains(selfId))
            {
                try
                {
                    _func(_state);
                }
                catch (Exception e)
                {
                    _errors[selfId] = e;
                }
            }
            foreach (int id in _mask)
            {
                if (id == selfId) continue;
                var done = new StateCondition(this, id, Done);
                Wait(ref done, cpus[id], DoneWhat);
            }
        }
        catch
        {
            // A target ran its function for longer than WaitTimeout: let it finish on its own (it releases its claim).
            Abandon(funcReleased: true);
            throw;
        }

        // Everyone has re-acknowledged: nobody touches this object any more. Collect errors, free the claims, resume.
        Exception? single = null;
        List<Exception>? several = null;
        foreach (int id in _mask)
        {
            Exception? e = _errors[id];
            if (e == null) continue;
            _errors[id] = null;
            if (single == null) single = e;
            else (several ??= [single]).Add(e);
        }
        if (_targetCount > 0) master?.Trace?.Record(TraceEvent.SyncEnd, master.Id, -1, null, (long)_mask.Word(0));
        for (int id = 0; id < cpus.Length; id++)
        {
            if (id == selfId || _mask.Contains(id))
            {
                _slots[id] = Idle;
                cpus[id].ReleaseCpuSyncClaim(this);
            }
        }
        _master?.EndCpuSyncMaster(this);
        _master = null;
        _func = null; // everyone is done with the request: do not keep the caller's state alive
        _state = null;
        _mask = default;
        if (several != null) throw new AggregateException($"The cpusync function threw on {several.Count} CPUs.", several);
        if (single != null) ExceptionDispatchInfo.Throw(single);
        return true;
    }

    /// <summary>
    /// Gives up on this sync after a failure: targets not yet reached never will be (CAS Sent -> Abandoned), held
    /// targets are released (without the function when <paramref name="funcReleased"/> is false), and every claim is
    /// freed, by us for CPUs that are done with this sync or never held, by the target itself for those still busy
    /// with it. The object is never reused: a late <c>remote1</c> may still read it.
    /// </summary>
    private void Abandon(bool funcReleased)
    {
        if (!funcReleased) _skipFunc = true; // written before any Released below (whose Exchange publishes it)
        // Full fence: pairs with the target's Exchange(Done) then read of _abandoned, so that one of us frees its claim.
        Interlocked.Exchange(ref _abandoned, 1);
        Cpu[] cpus = _cpus;
        for (int id = 0; id < cpus.Length; id++)
        {
            int s = Volatile.Read(ref _slots[id]);
            if (s == Sent)
            {
                s = Interlocked.CompareExchange(ref _slots[id], Abandoned, Sent);
                if (s == Sent) s = Abandoned;
            }
            if (s == Held)
            {
                Interlocked.Exchange(ref _slots[id], Released);
                cpus[id].TryWake();
                continue; // it finishes, sees _abandoned and frees its claim
            }
            if (s == Released || s == Running) continue; // likewise
            if (Interlocked.Exchange(ref _errors[id], null) is { } error)
            {
                // The caller gets the failure that made us give up; what a function threw must not vanish with it.
                // Taken with an exchange: a target that sees _abandoned takes it too, and only one of us reports it.
                _runtime.RaiseUnhandledException(cpus[id], error, _master?.Id ?? Cpu.ExternalSource);
            }
            cpus[id].ReleaseCpuSyncClaim(this); // Idle (our own CPU, or not claimed: no-op), Done or Abandoned
        }
        if (_targetCount > 0) _master?.Trace?.Record(TraceEvent.SyncEnd, _master.Id, -1, null, (long)_mask.Word(0)); // pairs with sync_start
        // Only the master side ends: targets still busy with this sync read the function and its state.
        _master?.EndCpuSyncMaster(this);
        _master = null;
    }

    /// <summary>
    /// Waits for <paramref name="condition"/>: on a CPU of this runtime with its own wait loop (which drains its IPIs
    /// and polls its cpusync slot), elsewhere by spinning and yielding (such a thread has no IPIs to drain).
    /// Warns and times out like every other wait (<see cref="CpuRuntimeOptions.WaitWarning"/>, <see cref="CpuRuntimeOptions.WaitTimeout"/>).
    /// </summary>
    private void Wait<TCondition>(ref TCondition condition, Cpu target, string what) where TCondition : struct, Cpu.IWaitCondition
    {
        Cpu? waiter = Cpu.Current;
        if (waiter != null && waiter.Runtime == _runtime)
        {
            waiter.WaitUntil(ref condition, target, what);
            return;
        }
        if (condition.IsMet) return;
        long start = Stopwatch.GetTimestamp();
        bool warned = false;
        long sleepAfter = start + Stopwatch.Frequency / 1000;
        bool maySleep = false;
        var spinner = new SpinWait();
        for (int spins = 1; !condition.IsMet; spins++)
        {
            // Spin and yield for the first millisecond (acknowledgements take microseconds, and Sleep(1) would cost a
            // millisecond each time); past that, allow sleeping: we may be waiting for another master's long scope.
            spinner.SpinOnce(maySleep ? 20 : -1);
            if ((spins & 15) == 0)
            {
                maySleep = Stopwatch.GetTimestamp() >= sleepAfter;
                target.CheckCpuSyncWait(start, ref warned, what, condition.Lag);
            }
        }
    }

    /// <summary>Claims <c>cpu</c> for <c>sync</c>; idempotent once it succeeded.</summary>
    private readonly struct ClaimCondition(Cpu cpu, CpuSync sync) : Cpu.IWaitCondition
    {
        public bool IsMet => cpu.TryClaimCpuSync(sync);
        public long Lag => 1;
    }

    private readonly struct StateCondition(CpuSync sync, int cpu, int state) : Cpu.IWaitCondition
    {
        public bool IsMet => sync.StateOf(cpu) == state;
        public long Lag => 1;
    }

    // ------------------------------------------------------------------ target side

    /// <summary>Target, in <c>remote1</c>: acknowledges (CAS Sent -> Held). False if the master abandoned this sync first.</summary>
    internal bool TryAcknowledge(int cpu) => Interlocked.CompareExchange(ref _slots[cpu], Held, Sent) == Sent;

    /// <summary>
    /// Target, once released (seed: the first branch of <c>lwkt_cpusync_remote2</c>): runs the function unless the
    /// interlock failed. An exception goes to the master (or, if the master gave up, to <see cref="CpuRuntime.UnhandledException"/>).
    /// </summary>
    internal Exception? RunFunction(int cpu)
    {
        Volatile.Write(ref _slots[cpu], Running); // a poll nested in the function must neither re-run it nor wait for it
        if (_skipFunc || _func == null) return null;
        try
        {
            _func(_state);
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    /// <summary>
    /// Target: re-acknowledges (<see cref="Done"/>). After this the master may reuse the object, so the only later
    /// read is of <see cref="_abandoned"/>, which never goes back to 0. Returns true if the master gave up on this
    /// sync, in which case the caller frees its own claim and reports <paramref name="unclaimed"/> (the error, unless
    /// the master's <see cref="Abandon"/> took it first).
    /// </summary>
    internal bool Complete(int cpu, Exception? error, out Exception? unclaimed)
    {
        _errors[cpu] = error; // published by the Exchange below
        // Full fence: Done before the read of _abandoned (pairs with Abandon's Exchange then reads of the slots).
        Interlocked.Exchange(ref _slots[cpu], Done);
        if (Volatile.Read(ref _abandoned) == 0)
        {
            unclaimed = null;
            return false;
        }
        unclaimed = error == null ? null : Interlocked.Exchange(ref _errors[cpu], null);
        return true;
    }
}
