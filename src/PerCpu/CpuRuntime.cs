using System.Diagnostics;
using PerCpu.Diagnostics;
using PerCpu.Ipi;

namespace PerCpu;

/// <summary>
/// A set of virtual CPUs: dedicated threads, pinned to cores where the OS allows, that own their data and call each
/// other through IPI message queues (DragonFly BSD's <c>lwkt_ipiq</c>). Start one with <see cref="Start(CpuRuntimeOptions?)"/> and end it
/// with <c>await using</c>: disposal refuses new calls from outside, runs everything already accepted, then joins the
/// threads.
/// </summary>
[DebuggerDisplay("CpuRuntime: {CpuCount} CPUs")]
public sealed partial class CpuRuntime : IAsyncDisposable, IDisposable
{
    /// <summary>State every CPU of a runtime shares (and nothing else holds), so CPUs reach it without going through the runtime.</summary>
    internal sealed partial class Shared(CpuRuntimeOptions options, bool manual)
    {
        public readonly CpuRuntimeOptions Options = options;
        public readonly bool Manual = manual;
        public readonly long IdleSpinTicks = (long)(options.IdleSpin.TotalSeconds * Stopwatch.Frequency);
        public Cpu[] Cpus = [];
        /// <summary>Outgoing rings by [source][target]: row s is CPU s's own array (it fills it lazily).</summary>
        public IpiRing?[][] Outgoing = [];
        /// <summary>The meter's recording side (histograms); set once by the constructor, before any CPU thread starts, never changed.</summary>
        public RuntimeMetrics? Metrics;
        /// <summary>Counters of sends from threads that are not CPUs (any thread, with atomics).</summary>
        public readonly CpuCounters External = new();
        /// <summary>Statistics at the last reset, by CPU id (index CpuCount: external); replaced whole, never mutated.</summary>
        public CpuStatistics[] Baselines = new CpuStatistics[options.CpuCount + 1];
        /// <summary>Set once disposal begins: calls from outside threads are refused from then on.</summary>
        public volatile bool Disposing;
        internal const int PostsOpen = 0, PostsClosing = 1, PostsClosedState = 2;

        /// <summary>
        /// Where posts from threads that are not CPUs go (phase 2 of <see cref="DisposeCoreAsync"/>): Open, to the CPUs;
        /// Closing, nowhere yet (the disposer is deciding; posters wait); Closed, to the thread pool. Written by the
        /// disposer only; read by posters.
        /// </summary>
        public volatile int PostGate;

        /// <summary>True once posts from outside go to the thread pool: the CPUs take no more work.</summary>
        public bool PostsClosed => PostGate == PostsClosedState;
        /// <summary>Set once the CPU threads have exited.</summary>
        public volatile bool Stopped;
        /// <summary>Posts from outside between their <see cref="PostsClosed"/> check and their enqueue (any thread, atomics).</summary>
        private Ipi.PaddedLong _postsInFlight;

        /// <summary>
        /// A thread that is not a CPU starts a post: true to queue it on the CPU (then <see cref="ExitPost"/>), false if
        /// the CPUs take no more work (run it elsewhere). Waits while the disposer decides.
        /// </summary>
        public bool EnterPost()
        {
            SpinWait spinner = default;
            while (true)
            {
                // Full fence (Interlocked) before the check, mirrored by the disposer: either we see the gate it set,
                // or it sees us in flight and waits until our post is queued (which its next check then counts).
                Interlocked.Increment(ref _postsInFlight.Value);
                int gate = PostGate;
                if (gate == PostsOpen) return true;
                Interlocked.Decrement(ref _postsInFlight.Value);
                if (gate == PostsClosedState) return false;
                spinner.SpinOnce(); // Closing: one quiescence check away from Open or Closed
            }
        }

        public void ExitPost() => Interlocked.Decrement(ref _postsInFlight.Value);

        public bool PostsInFlight => Volatile.Read(ref _postsInFlight.Value) != 0;
        /// <summary>
        /// Outside calls between their disposal check and their enqueue (any thread, atomics). On a line of its own:
        /// every outside call writes it twice, and the CPU threads read this object's other fields on every pass.
        /// </summary>
        private Ipi.PaddedLong _outsideCalls;

        public CpuStatistics Baseline(int id) => Volatile.Read(ref Baselines)[id];

        public void EnterOutsideCall()
        {
            // Full fence (Interlocked) before the check; Dispose does the mirror image, so either we see Disposing
            // or Dispose sees us and waits until our message is in the inbox.
            Interlocked.Increment(ref _outsideCalls.Value);
            if (Disposing)
            {
                Interlocked.Decrement(ref _outsideCalls.Value);
                throw new ObjectDisposedException(nameof(CpuRuntime), "The CpuRuntime is disposed (or being disposed) and accepts no new calls from outside its CPUs.");
            }
        }

        public void ExitOutsideCall() => Interlocked.Decrement(ref _outsideCalls.Value);

        public bool OutsideCallsInFlight => Volatile.Read(ref _outsideCalls.Value) != 0;
    }

    private readonly Shared _shared;
    private readonly Cpu[] _cpus;
    private int _disposeState; // 0 running, 1 disposing or disposed
    private Task? _disposeTask;

    private CpuRuntime(CpuRuntimeOptions options, bool manual)
    {
        _shared = new Shared(options, manual);
        _cpus = new Cpu[options.CpuCount];
        for (int i = 0; i < _cpus.Length; i++) _cpus[i] = new Cpu(this, i, _shared);
        _shared.Cpus = _cpus;
        _shared.InitializeDeferredWakes(_cpus.Length, manual); // CpuRuntime.Timers.cs
        var rows = new IpiRing?[_cpus.Length][];
        for (int i = 0; i < _cpus.Length; i++) rows[i] = _cpus[i].OutgoingRings;
        _shared.Outgoing = rows;
        AllCpus = CpuMask.All(_cpus.Length);
        InitializeDiagnostics(); // CpuRuntime.Diagnostics.cs: the meter, the event source
    }

    /// <summary>Starts a runtime: creates the CPUs and their threads and returns once every thread runs (and is pinned, where possible).</summary>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range; the message says which and what is allowed.</exception>
    public static CpuRuntime Start(CpuRuntimeOptions? options = null) => Start(options, meterFactory: null);

    /// <summary>
    /// Starts a runtime whose <c>PerCpu</c> meter comes from <paramref name="meterFactory"/> (a host's
    /// <see cref="System.Diagnostics.Metrics.IMeterFactory"/>, as ASP.NET Core's meters do; PerCpu.Hosting passes the
    /// host's): the factory owns and disposes the meter, which carries the tag <c>percpu.runtime.id</c>, and tests can
    /// collect it with <c>MetricCollector</c>. Otherwise as <see cref="Start(CpuRuntimeOptions?)"/>.
    /// </summary>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    /// <param name="meterFactory">The factory of the meter; <see langword="null"/>: the runtime creates and disposes its own.</param>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range; the message says which and what is allowed.</exception>
    public static CpuRuntime Start(CpuRuntimeOptions? options, System.Diagnostics.Metrics.IMeterFactory? meterFactory)
    {
        CpuRuntimeOptions validated = (options ?? new CpuRuntimeOptions()).Validate();
        validated.MeterFactory = meterFactory;
        var runtime = new CpuRuntime(validated, manual: false);
        int[] cores = validated.PinThreads ? Platform.Affinity.AllowedCores() : [];
        using var started = new CountdownEvent(runtime._cpus.Length);
        for (int i = 0; i < runtime._cpus.Length; i++)
            runtime._cpus[i].StartThread(cores.Length > 0 ? cores[i % cores.Length] : -1, started);
        started.Wait();
        return runtime;
    }

    /// <summary>
    /// Test and simulator hook: a runtime whose CPUs have no threads. Drive them with <see cref="Cpu.RunOnce"/>, one
    /// dispatch pass at a time, on the calling thread. Sends that would have to wait for room are not supported here.
    /// </summary>
    internal static CpuRuntime StartManual(CpuRuntimeOptions? options = null)
        => new((options ?? new CpuRuntimeOptions()).Validate(), manual: true);

    /// <summary>The number of CPUs.</summary>
    public int CpuCount => _cpus.Length;

    /// <summary>The CPU with id <paramref name="id"/>.</summary>
    /// <param name="id">0 to <see cref="CpuCount"/> - 1.</param>
    public Cpu this[int id]
    {
        get
        {
            if ((uint)id >= (uint)_cpus.Length)
                throw new ArgumentOutOfRangeException(nameof(id), id, $"CPU ids run from 0 to {_cpus.Length - 1}.");
            return _cpus[id];
        }
    }

    /// <summary>All CPUs, by id (a read-only view: the runtime's own array is not handed out).</summary>
    public IReadOnlyList<Cpu> Cpus => _cpusView ??= Array.AsReadOnly(_cpus);

    private IReadOnlyList<Cpu>? _cpusView;

    /// <summary>A mask of every CPU.</summary>
    public CpuMask AllCpus { get; }

    /// <summary>True if every CPU thread is pinned to a core; false where the OS did not allow it or <see cref="CpuRuntimeOptions.PinThreads"/> is off.</summary>
    public bool ThreadsPinned
    {
        get
        {
            foreach (Cpu cpu in _cpus) if (cpu.PinnedCore < 0) return false;
            return true;
        }
    }

    /// <summary>Raised on the CPU thread when a function, task or handler throws. The CPU goes on; so do the messages behind it.</summary>
    public event EventHandler<CpuExceptionEventArgs>? UnhandledException;

    /// <summary>Raised when something deserves a log line, for example a wait longer than <see cref="CpuRuntimeOptions.WaitWarning"/>.</summary>
    public event EventHandler<CpuWarningEventArgs>? Warning;

    internal Shared Internals => _shared;

    internal void RaiseUnhandledException(Cpu cpu, Exception e, int source)
    {
        try
        {
            UnhandledException?.Invoke(this, new CpuExceptionEventArgs(cpu, e, source));
        }
        catch
        {
            // A throwing handler must not take the CPU down either; the error is already counted.
        }
    }

    internal void RaiseWarning(Cpu cpu, string message)
    {
        try
        {
            Warning?.Invoke(this, new CpuWarningEventArgs(cpu, message));
        }
        catch
        {
            // As above: a log handler must not break the wait that raised it.
        }
    }

    /// <summary>
    /// Sends the function to every CPU in <paramref name="mask"/> (seed: <c>lwkt_send_ipiq3_mask</c>), the calling CPU
    /// included (a direct call). Starts at the caller's own CPU and wraps around, so low-numbered CPUs are not always
    /// served first.
    /// </summary>
    /// <param name="mask">The target CPUs.</param>
    /// <param name="func">The function; use a <c>static</c> lambda.</param>
    /// <param name="arg1">Passed to <paramref name="func"/>.</param>
    /// <param name="arg2">Passed to <paramref name="func"/>.</param>
    /// <returns>How many CPUs the message was sent to.</returns>
    /// <exception cref="ArgumentException">The mask names a CPU this runtime does not have.</exception>
    public int SendToMask(CpuMask mask, Action<object?, long> func, object? arg1 = null, long arg2 = 0)
    {
        ArgumentNullException.ThrowIfNull(func);
        CheckMask(mask);
        Cpu? self = Cpu.Current;
        bool onCpu = self != null && self.Runtime == this;
        if (self != null && !onCpu) throw _cpus[0].ForeignCpu(self);
        // From outside: one disposal check for the whole broadcast, so it is refused before any CPU accepted it or
        // reaches every CPU of the mask (issue 11 item 9), never half of them.
        if (!onCpu) _shared.EnterOutsideCall();
        try
        {
            int start = onCpu ? self!.Id : 0;
            int n = _cpus.Length, sent = 0;
            for (int i = 0; i < n; i++)
            {
                int id = start + i;
                if (id >= n) id -= n;
                if (!mask.Contains(id)) continue;
                if (onCpu) _cpus[id].Send(func, arg1, arg2);
                else _cpus[id].SendOutsideEntered(func, arg1, arg2);
                sent++;
            }
            return sent;
        }
        finally
        {
            if (!onCpu) _shared.ExitOutsideCall();
        }
    }

    internal void CheckMask(CpuMask mask)
    {
        if (mask.Highest >= _cpus.Length)
            throw new ArgumentException($"The mask {mask} names CPU {mask.Highest}, but this runtime has CPUs 0 to {_cpus.Length - 1}. Build masks with CpuMask.Of or runtime.AllCpus.", nameof(mask));
    }

    /// <summary>
    /// Returns once every CPU has processed everything the calling thread sent it before the call (seed:
    /// <c>lwkt_synchronize_ipiqs</c>). On a CPU, it keeps processing its own incoming IPIs while it waits.
    /// </summary>
    public void Synchronize()
    {
        Cpu? self = Cpu.Current;
        foreach (Cpu target in _cpus)
        {
            if (self != null && self.Runtime == this)
            {
                if (target == self) continue;
                IpiRing? ring = self.OutgoingRings[target.Id];
                if (ring != null) target.WaitFor(ring.P.Accepted);
            }
            else
            {
                long seq = target.Inbox.EnqueuedCount;
                if (seq > 0) target.WaitFor(seq);
            }
        }
    }

    /// <summary>
    /// Completes once every CPU has processed everything sent to it before the call: <see cref="Synchronize"/> without
    /// blocking a thread that is not a CPU. From such a thread it waits (without a thread) for each CPU's inbox to run
    /// what it had accepted when the call was made (an <see cref="Cpu.InvokeAsync{T}(Func{T}, CancellationToken)"/>
    /// still waiting for room is not yet accepted); there is no <see cref="CpuRuntimeOptions.WaitTimeout"/>, pass a
    /// token to give up. On a CPU of this runtime it waits as <see cref="Synchronize"/> does and returns a completed task.
    /// </summary>
    /// <param name="cancellationToken">Stops the wait (the messages still run); the task is then cancelled.</param>
    /// <returns>A task that completes when every CPU has caught up.</returns>
    /// <exception cref="InvalidOperationException">Called on a CPU of another runtime.</exception>
    public ValueTask SynchronizeAsync(CancellationToken cancellationToken = default)
    {
        Cpu? self = Cpu.Current;
        if (self != null)
        {
            if (self.Runtime != this) throw _cpus[0].ForeignCpu(self);
            if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
            try
            {
                Synchronize();
                return default;
            }
            catch (TimeoutException e)
            {
                return ValueTask.FromException(e);
            }
        }
        // Every target's mark is taken now, before any wait: what is sent while we wait is not waited for.
        long[] marks = new long[_cpus.Length];
        bool any = false;
        for (int i = 0; i < _cpus.Length; i++)
        {
            long seq = _cpus[i].Inbox.EnqueuedCount;
            if (seq > _cpus[i].Inbox.Executed)
            {
                marks[i] = seq;
                any = true;
            }
        }
        return any ? new ValueTask(SynchronizeFromOutsideAsync(marks, cancellationToken)) : default;
    }

    private async Task SynchronizeFromOutsideAsync(long[] marks, CancellationToken cancellationToken)
    {
        for (int i = 0; i < marks.Length; i++)
            if (marks[i] != 0) await _cpus[i].WaitForAsync(marks[i], cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Statistics summed over every CPU and over calls from outside threads, since the last <see cref="ResetStatistics"/>.</summary>
    public CpuStatistics GetStatistics()
    {
        CpuStatistics sum = _shared.External.Snapshot() - _shared.Baseline(_cpus.Length);
        foreach (Cpu cpu in _cpus) sum += cpu.GetStatistics();
        return sum;
    }

    /// <summary>
    /// Starts every count of <see cref="GetStatistics"/> and <see cref="Cpu.GetStatistics"/> again from zero (counters
    /// are never written by other threads: the current values become the baseline). The <c>PerCpu</c> meter's counters
    /// are not reset: they report totals since the start, which never go backwards.
    /// </summary>
    public void ResetStatistics()
    {
        var baselines = new CpuStatistics[_cpus.Length + 1];
        for (int i = 0; i < _cpus.Length; i++) baselines[i] = _cpus[i].Counters.Snapshot();
        baselines[_cpus.Length] = _shared.External.Snapshot();
        Volatile.Write(ref _shared.Baselines, baselines);
        ResetSoftInterruptStatistics(); // CpuRuntime.SoftInterrupts.cs
    }

    /// <summary>True once <see cref="DisposeAsync"/> has begun.</summary>
    public bool IsDisposed => _shared.Disposing;

    /// <summary>
    /// Refuses new calls from outside threads (<see cref="ObjectDisposedException"/>), runs everything already accepted
    /// (IPIs, tasks, soft interrupts, asynchronous calls in flight, and whatever they send in turn), then stops and joins
    /// the CPU threads. Safe to call more than once, from any thread that is not one of this runtime's CPUs.
    /// <para>
    /// It stops in phases, so that no CPU exits while another can still send to it: (1) calls from outside are refused;
    /// (2) once nothing is in flight anywhere, posts to the CPUs' <see cref="Cpu.SynchronizationContext"/> and
    /// <see cref="Cpu.TaskScheduler"/> from threads that are not CPUs (timer continuations such as <c>Task.Delay</c>'s,
    /// <c>SynchronizationContext.Post</c>, tasks started on the scheduler) stop going to the CPUs — until then they
    /// run there, with whatever they send; (3) the CPUs stop together. A post that arrives after phase 2 still runs,
    /// on the thread pool (never dropped); calls into the runtime from there throw <see cref="ObjectDisposedException"/>,
    /// so an async loop that keeps sending ends with that exception in its task.
    /// </para>
    /// </summary>
    /// <exception cref="InvalidOperationException">Called from one of this runtime's own CPUs (it would wait for itself).</exception>
    public ValueTask DisposeAsync()
    {
        if (Cpu.Current is { } self && self.Runtime == this)
            throw new InvalidOperationException($"CPU {self.Id} cannot dispose its own runtime: disposal waits for every CPU to finish. Dispose from a thread that is not a CPU.");
        if (Interlocked.Exchange(ref _disposeState, 1) == 0)
            Volatile.Write(ref _disposeTask, DisposeCoreAsync());
        SpinWait spinner = default;
        Task? task;
        while ((task = Volatile.Read(ref _disposeTask)) == null) spinner.SpinOnce();
        return new ValueTask(task);
    }

    /// <summary>
    /// Synchronous <see cref="DisposeAsync"/>: blocks until the runtime has stopped. Safe on a thread whose
    /// <see cref="SynchronizationContext"/> runs on that same thread (a UI thread, a CPU of another runtime): the
    /// disposal never posts to the caller's context.
    /// </summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private async Task DisposeCoreAsync()
    {
        // Leave the caller's context at once: a synchronous Dispose blocks it, so nothing here may post to it (issue 11 item 3).
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);

        // Phase 0 (CpuRuntime.Net.cs): listeners close and connections stop receiving, so their handlers can finish.
        await ShutdownIoAsync().ConfigureAwait(false);

        // Phase 1: refuse calls from outside. Full fence: pairs with EnterOutsideCall; after this loop no outside call
        // can still be on its way in.
        _shared.Disposing = true;
        Interlocked.MemoryBarrier();
        SpinWait spinner = default;
        while (_shared.OutsideCallsInFlight) spinner.SpinOnce();
        await WaitUntilQuiescentAsync().ConfigureAwait(false);

        // Phase 2: close the CPUs to posts from outside, once nothing is in flight. Posts keep reaching the CPUs while
        // anything runs there (the continuations of work in flight must resume where they belong). Then the gate goes
        // to Closing (posters wait), posts already past it land, and one more check decides: still quiescent, so no
        // work can start again (outside calls are refused, posts wait, CPUs only send from work, of which there is
        // none): Closed, later posts run on the thread pool. Otherwise: Open again, and wait for that work.
        while (true)
        {
            await WaitUntilQuiescentAsync().ConfigureAwait(false);
            _shared.PostGate = Shared.PostsClosing;
            // Timers freeze with the gate: a callout is work that starts by itself, and none may start once we decide
            // nothing is left (a callback could send to a CPU that has already stopped). A softclock run already
            // under way is counted as accepted and not finished, so the check below fails and we go round again.
            _shared.TimersFrozen = true;
            Interlocked.MemoryBarrier(); // pairs with EnterPost: the gate before our look at posts in flight
            spinner = default;
            while (_shared.PostsInFlight) spinner.SpinOnce();
            if (IsQuiescent())
            {
                _shared.PostGate = Shared.PostsClosedState;
                break;
            }
            _shared.TimersFrozen = false;
            _shared.PostGate = Shared.PostsOpen;
            // A CPU that parked while timers were frozen ignored its deadline: wake the sleepers to take it up again.
            foreach (Cpu cpu in _cpus) cpu.TryWake();
        }

        // Phase 3: stop together. No CPU has work, and none can get any: none exits while another could still send to it.
        if (!_shared.Manual)
        {
            foreach (Cpu cpu in _cpus) cpu.RequestStop();
            foreach (Cpu cpu in _cpus) await cpu.Exited.ConfigureAwait(false);
        }
        _shared.Stopped = true;
        Interlocked.MemoryBarrier(); // Stopped is visible before anything we do after (item 5: no store-load reordering here)
        _shared.DisposeDeferredWakes(); // CpuRuntime.Timers.cs
        ShutdownDiagnostics(); // CpuRuntime.Diagnostics.cs
    }

    private async Task WaitUntilQuiescentAsync()
    {
        if (_shared.Manual)
        {
            while (!IsQuiescent())
                foreach (Cpu cpu in _cpus) cpu.RunOnce();
            return;
        }
        for (int round = 0; !IsQuiescent(); round++)
        {
            // A parked CPU may hold passive messages, which wake nobody, and its tick may be long: wake the sleepers
            // (a read of their state when they are awake).
            foreach (Cpu cpu in _cpus) cpu.TryWake();
            if (round < 50) await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
            else await Task.Delay(1).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// True if nothing accepted is still pending anywhere. Reads every CPU's "finished" total first and its "accepted"
    /// total after: finished never exceeds accepted at any instant and both only grow, so equal sums prove that at some
    /// instant between the two sweeps nothing was in flight (and with outside calls refused, nothing new can start).
    /// <para>
    /// Memory order (issue 11 item 4; x86 gives it for free, ARM64 does not): every "finished" count is a release store
    /// made after the work it counts, and every "accepted" count is stored before the work can run (a release store
    /// program-ordered before its publication, or an interlocked claim). The sweeps read with acquire. So a finished
    /// count we see carries with it every accepted count that its work, or anything that happened before it, made:
    /// the sums can only be equal if nothing was in flight.
    /// </para>
    /// </summary>
    internal bool IsQuiescent()
    {
        long finished = 0, accepted = 0;
        foreach (Cpu cpu in _cpus) finished += cpu.FinishedWork();
        Interlocked.MemoryBarrier(); // the accepted sweep is not hoisted above the finished sweep
        foreach (Cpu cpu in _cpus) accepted += cpu.AcceptedWork();
        return finished == accepted;
    }
}
