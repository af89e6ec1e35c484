using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using PerCpu.Diagnostics;
using PerCpu.Dispatch;
using PerCpu.Io;
using PerCpu.Ipi;

namespace PerCpu;

/// <summary>
/// A virtual CPU: one dedicated thread running a dispatch loop (IPIs, then soft interrupts, then tasks, then idle),
/// owning its data, reached from other CPUs through per-pair IPI rings and from other threads through a bounded inbox.
/// Get one from <see cref="CpuRuntime.this[int]"/>; <see cref="Current"/> is the CPU whose thread is running.
/// </summary>
[DebuggerDisplay("CPU {Id}")]
public sealed partial class Cpu
{
    /// <summary>Source id used for entries that came from the inbox (threads that are not CPUs).</summary>
    internal const int ExternalSource = -1;

    /// <summary>The CPU that owns the calling thread; set by the CPU thread itself (or by a test stepping the loop).</summary>
    [ThreadStatic] private static Cpu? t_current;

    /// <summary>The CPU whose thread is calling, or <see langword="null"/> on any other thread.</summary>
    public static Cpu? Current => t_current;

    /// <summary>This CPU's index in its runtime, 0 to <see cref="CpuRuntime.CpuCount"/> - 1.</summary>
    public int Id { get; }

    /// <summary>The runtime this CPU belongs to.</summary>
    public CpuRuntime Runtime { get; }

    /// <summary>The core this CPU's thread is pinned to, or -1 when it runs unpinned.</summary>
    public int PinnedCore { get; private set; } = -1;

    /// <summary>A <see cref="System.Threading.SynchronizationContext"/> that posts to this CPU; installed on its thread, so <c>await</c> there resumes there.</summary>
    public SynchronizationContext SynchronizationContext => _syncContext;

    /// <summary>A <see cref="System.Threading.Tasks.TaskScheduler"/> that runs tasks on this CPU, one at a time.</summary>
    public TaskScheduler TaskScheduler => TaskSchedulerCore;

    internal readonly CpuTaskScheduler TaskSchedulerCore;
    private readonly CpuSynchronizationContext _syncContext;
    private readonly CpuRuntime.Shared _shared;

    // ---- Idle / wake-up (the seed's gd_npoll interlock) ----
    internal const int StateParked = 0, StateAwake = 1;

    /// <summary>
    /// Parked: the owner may sleep and needs a wake-up. Awake: it will look at its mask before it sleeps again (busy
    /// or idle-spinning: the two are not told apart, so that the line is written only around a park and a sender's
    /// read of it stays a cache hit). Written by the owner and, with a CAS Parked→Awake that claims the duty to wake,
    /// by senders.
    /// </summary>
    private PaddedLong _state;

    /// <summary>
    /// The seed's <c>gd_ipimask</c>: bit s = source CPU s has published entries; bit <see cref="CpuRuntime.CpuCount"/> =
    /// the inbox or the remote task queue has work. Set by producers with <see cref="Interlocked.Or(ref long, long)"/>.
    /// Ring bits are sticky: the owner clears them only on its way to park (<see cref="ClearRingBits"/>), so that while
    /// it is awake a sender finds its bit set and publishes without a locked write to this line. The inbox bit is
    /// cleared after each drain, then re-checked.
    /// </summary>
    private readonly PaddedLong[] _ipiMask;

    private readonly int _externalBit;

    /// <summary>Ring bits the last <see cref="ClearRingBits"/> cleared, per mask word (owner only).</summary>
    private readonly long[] _clearedBits;
    private readonly Parker _parker = new();

    /// <summary>Bounded MPSC queue for calls from threads that are not CPUs of this runtime.</summary>
    internal readonly Inbox Inbox;

    /// <summary>
    /// Tasks and continuations posted by threads that are not CPUs of this runtime (its <see cref="SynchronizationContext"/>
    /// and <see cref="TaskScheduler"/> used from elsewhere): bounded like the inbox, so a flood makes the posters wait
    /// (issue 11 item 8). The owner runs them straight from here, a bounded share per pass. CPUs of this runtime post
    /// through their rings instead (they must never block on a queue they cannot drain).
    /// </summary>
    internal readonly BoundedQueue<TaskItem> Posts;

    /// <summary>Owner-only local task queue.</summary>
    private readonly LocalTaskQueue _tasks = new();

    /// <summary>Outgoing rings by target id, created lazily by the owner and published with a release store.</summary>
    private readonly IpiRing?[] _outgoing;

    /// <summary>Rings with unpublished entries (owner only).</summary>
    private IpiRing[] _flushList;

    /// <summary>Rings with messages in their overflow, the first <see cref="OwnerState.OverflowCount"/> of them (owner only).</summary>
    private IpiRing[] _overflowing;

    /// <summary>
    /// The owner's hot counters and flags, written every pass or every message, on lines of their own: senders read
    /// this object's other fields (<see cref="Id"/>, the mask and state references) on every send, and must not miss
    /// on a line that the owner has just written.
    /// </summary>
    [StructLayout(LayoutKind.Explicit, Size = 192)]
    internal struct OwnerState
    {
        /// <summary>Counts FlushAll calls: each pass may publish a ring early once, see SendFromCpu.</summary>
        [FieldOffset(64)] public long FlushEpoch;
        /// <summary>Sequence of direct calls to self: what Send returns for self.</summary>
        [FieldOffset(72)] public long SelfSeq;
        /// <summary>Tasks queued locally, and tasks finished (monotonic; read at shutdown by the disposing thread).</summary>
        [FieldOffset(80)] public long LocalTasksPosted;
        [FieldOffset(88)] public long TasksRun;
        /// <summary>Entries in the flush list.</summary>
        [FieldOffset(96)] public int FlushCount;
        /// <summary>Waits (full ring, WaitFor) on this thread's stack; a send made inside one may fill the ring further.</summary>
        [FieldOffset(100)] public int WaitDepth;
        /// <summary>Async functions started by InvokeAsync on this CPU, and finished (read at shutdown).</summary>
        [FieldOffset(104)] public long AsyncStarted;
        [FieldOffset(112)] public long AsyncFinished;
        /// <summary>After a tick found nothing to do, sleep again without spinning first.</summary>
        [FieldOffset(120)] public bool SkipSpin;
        // stall watchdog (Diagnostics/StallWatchdog.cs): plain stores by the owner; the watchdog reads them racily
        // (a stale value delays or skips one report, never corrupts anything).
        /// <summary>The dispatch loop's step (a <see cref="Diagnostics.StallPhase"/>): written at each step of RunPass, in Idle and around a nested cpusync hold.</summary>
        [FieldOffset(121)] public Diagnostics.StallPhase Phase;
        /// <summary>Dispatch passes begun (monotonic): with Received and TasksRun, what tells the watchdog this CPU is moving.</summary>
        [FieldOffset(128)] public long PassStamp;
        /// <summary>The IPI function or task callback started last (the watchdog names its method when it reports); cleared in Idle, so that an idle CPU keeps nothing alive.</summary>
        [FieldOffset(136)] public object? Running;
        /// <summary>The state of the task started last (an await continuation's state names the async method); cleared in Idle.</summary>
        [FieldOffset(144)] public object? RunningState;
        /// <summary>Posted tasks run (monotonic; read at shutdown).</summary>
        [FieldOffset(152)] public long PostsRun;
        /// <summary>Rings in <see cref="_overflowing"/>.</summary>
        [FieldOffset(160)] public int OverflowCount;
        /// <summary>Messages in all of this CPU's overflows.</summary>
        [FieldOffset(164)] public int OverflowEntries;
        /// <summary>
        /// A lower bound of the earliest armed timer's due time (<see cref="long.MaxValue"/>: none), in
        /// <see cref="Stopwatch"/> units: lowered by every arm, recomputed by each softclock run (Cpu.Timers.cs).
        /// </summary>
        [FieldOffset(168)] public long NextTimerDeadline;
        /// <summary>Busy passes since the reactor was last polled (Cpu.Io.cs: polls are rate-limited while polls find nothing).</summary>
        [FieldOffset(176)] public int PassesSincePoll;
        /// <summary>The last reactor poll found events: poll again in the next pass.</summary>
        [FieldOffset(180)] public bool LastPollFound;
    }

    /// <summary>Owner only (see <see cref="OwnerState"/>).</summary>
    internal OwnerState Own;

    /// <summary>Set by the runtime once everything accepted has run; the loop then exits.</summary>
    private volatile bool _stopRequested;

    internal readonly CpuCounters Counters = new();

    /// <summary>The trace ring while tracing is on, else null (owner reads; set by the runtime when tracing starts or stops).</summary>
    internal CpuTraceRing? Trace;

    private Thread? _thread;
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal Cpu(CpuRuntime runtime, int id, CpuRuntime.Shared shared)
    {
        Runtime = runtime;
        Id = id;
        _shared = shared;
        int n = shared.Options.CpuCount;
        _externalBit = n;
        _ipiMask = new PaddedLong[(n + 1 + 63) >> 6];
        _clearedBits = new long[_ipiMask.Length];
        _outgoing = new IpiRing?[n];
        _flushList = new IpiRing[Math.Min(n, 8)];
        _overflowing = new IpiRing[Math.Min(n, 8)];
        Inbox = new Inbox(this, shared.Options.InboxCapacity);
        Posts = new BoundedQueue<TaskItem>(shared.Options.InboxCapacity);
        _syncContext = new CpuSynchronizationContext(this);
        TaskSchedulerCore = new CpuTaskScheduler(this);
        _state.Value = StateAwake;
        Own.FlushEpoch = 1;
        Own.NextTimerDeadline = long.MaxValue;
    }

    /// <summary>A snapshot of this CPU's IPI statistics since the last <see cref="CpuRuntime.ResetStatistics"/>.</summary>
    public CpuStatistics GetStatistics() => Counters.Snapshot() - _shared.Baseline(Id);

    /// <inheritdoc/>
    public override string ToString() => $"CPU {Id}";

    // ------------------------------------------------------------------ thread

    internal void StartThread(int core, CountdownEvent started)
    {
        _thread = new Thread(() => ThreadMain(core, started), maxStackSize: 0)
        {
            IsBackground = true,
            Name = $"{_shared.Options.ThreadName}/{Id}",
        };
        // UnsafeStart: the CPU thread does not inherit the starting thread's ExecutionContext (its AsyncLocals would
        // flow into every await on the CPU, and an await capturing both a context and a non-default ExecutionContext
        // allocates per operation).
        _thread.UnsafeStart();
    }

    private void ThreadMain(int core, CountdownEvent started)
    {
        t_current = this;
        SynchronizationContext.SetSynchronizationContext(_syncContext);
        if (core >= 0 && Platform.Affinity.TryPinCurrentThread(core)) PinnedCore = core;
        started.Signal();
        try
        {
            while (!RunLoop())
            {
            }
        }
        finally
        {
            FlushAll();
            AbandonTimers(); // Cpu.Timers.cs: armed timers do not outlive the runtime
            CloseIo(); // Cpu.Io.cs: sockets still open are closed, the reactor released
            t_current = null;
            _exited.TrySetResult();
        }
    }

    /// <summary>
    /// The dispatch loop; returns true when the runtime stopped it. No exception escapes a CPU thread (issue 11 item 6):
    /// user code is guarded where it runs, and anything that still comes out of the loop's own machinery (a parker
    /// failure, a bug) is reported and the loop goes on (returns false to be called again).
    /// </summary>
    private bool RunLoop()
    {
        try
        {
            while (true)
            {
                // After a pass that did work, Idle's first look (HasWork) is a cheaper way to learn whether there is
                // more than a second pass would be.
                if (RunPass()) Own.SkipSpin = false;
                else if (_stopRequested) return true;
                Idle();
            }
        }
        catch (Exception e)
        {
            ReportException(e, ExternalSource);
            return false;
        }
    }

    internal Task Exited => _exited.Task;

    /// <summary>This CPU's outgoing rings by target id (row <see cref="Id"/> of the ring matrix).</summary>
    internal IpiRing?[] OutgoingRings => _outgoing;

    /// <summary>Called by the runtime once everything accepted has run: the loop exits at its next idle moment.</summary>
    internal void RequestStop()
    {
        _stopRequested = true;
        ForceWake();
    }

    // ------------------------------------------------------------------ dispatch loop

    /// <summary>
    /// One pass of the dispatch loop, in the kernel's priority order: IPIs (and the cpusync queue), soft interrupts,
    /// a bounded batch of tasks; then publish what this pass sent. Returns true if it did any work. The CPU thread
    /// calls it in a loop; a test can call it through <see cref="RunOnce"/> to step a CPU without a thread.
    /// </summary>
    internal bool RunPass()
    {
        BeginPassForWatchdog(); // stall watchdog
        bool did = ProcessIpis();
        // An interlocked CPU (cpusync) runs only IPIs until its master lets it go. Checked before each phase: soft
        // interrupts process IPIs between handlers, and one of those may be a master's hold (issue 11 C).
        if (!IsInterlocked())
        {
            Own.Phase = StallPhase.SoftInterrupts; // stall watchdog
            // Hard interrupts before the soft ones they schedule: readiness schedules softnet (Net level, Cpu.Io.cs), a
            // due timer schedules softclock (Clock level, Cpu.Timers.cs); both run below, in priority order.
            did |= PollIo();
            did |= CheckCallouts();
            did |= RunSoftInterrupts();
        }
        if (!IsInterlocked())
        {
            Own.Phase = StallPhase.Tasks; // stall watchdog
            did |= RunTasks();
        }
        FlushAll();
        return did;
    }

    /// <summary>
    /// Test and simulator hook: runs one dispatch pass on the calling thread as if it were this CPU's thread.
    /// Only for a runtime started with <see cref="CpuRuntime.StartManual"/>.
    /// </summary>
    internal bool RunOnce()
    {
        if (!_shared.Manual) throw new InvalidOperationException("RunOnce is only for runtimes started with StartManual: this CPU has its own thread.");
        Cpu? previous = t_current;
        SynchronizationContext? previousContext = SynchronizationContext.Current;
        t_current = this;
        SynchronizationContext.SetSynchronizationContext(_syncContext);
        try
        {
            return RunPass();
        }
        finally
        {
            t_current = previous;
            SynchronizationContext.SetSynchronizationContext(previousContext);
        }
    }

    private const int TaskBatch = 32;

    /// <summary>
    /// Runs a bounded batch of tasks: first up to half the batch posted from other threads, then local ones, so that
    /// neither starves the other and neither starves the IPIs. Stops early if a task left the CPU held (cpusync).
    /// </summary>
    private bool RunTasks()
    {
        int n = 0;
        if (Posts.HasItem)
        {
            while (n < TaskBatch / 2 && Posts.TryDequeue(out TaskItem item))
            {
                RunTask(item);
                n++;
                // Release: counted as finished only after what the task did (and counted as accepted) is visible.
                Volatile.Write(ref Own.PostsRun, Own.PostsRun + 1);
                if (IsInterlocked()) break;
            }
            Posts.NotifyRoom();
        }
        while (n < TaskBatch && !IsInterlocked() && _tasks.TryDequeue(out TaskItem item))
        {
            RunTask(item);
            n++;
            Volatile.Write(ref Own.TasksRun, Own.TasksRun + 1); // release, as above
        }
        return n > 0;
    }

    private void RunTask(in TaskItem item)
    {
        Own.Running = item.Callback; Own.RunningState = item.State; // stall watchdog
        try
        {
            item.Run(this);
        }
        catch (Exception e)
        {
            ReportException(e, ExternalSource);
        }
    }

    /// <summary>
    /// Drains every source whose mask bit is set (seed: <c>lwkt_process_ipiq</c>). A ring's bit stays set (see
    /// <see cref="_ipiMask"/>): a nested drain (a function that waits on a full ring) still sees the source its caller
    /// is draining, and a message published while we drain is found by the next pass. The inbox bit keeps DragonFly's
    /// later order: drain, clear, re-check, so that work racing with the clear is never stranded.
    /// </summary>
    internal bool ProcessIpis()
    {
        bool any = false;
        PaddedLong[] mask = _ipiMask;
        for (int w = 0; w < mask.Length; w++)
        {
            long bits = Volatile.Read(ref mask[w].Value);
            while (bits != 0)
            {
                int b = System.Numerics.BitOperations.TrailingZeroCount(bits);
                bits &= bits - 1;
                int source = (w << 6) + b;
                if (source == _externalBit)
                {
                    any |= Inbox.Drain(this) > 0;
                    // Posted tasks run in the task phase; while some wait, the bit stays set (no locked clear and re-set per pass).
                    if (Posts.HasItem) continue;
                    long bit = 1L << b;
                    // Full fence: the clear is ordered before the re-check (pairs with the producer's enqueue-then-Or).
                    Interlocked.And(ref mask[w].Value, ~bit);
                    if (Inbox.HasWork || Posts.HasItem) Interlocked.Or(ref mask[w].Value, bit);
                }
                else
                {
                    any |= IncomingRing(source).Drain(this) > 0;
                }
            }
        }
        any |= ProcessCpuSyncQueue();
        return any;
    }

    /// <summary>
    /// The ring from <paramref name="source"/> to this CPU; only for a source whose mask bit was seen set. Acquire:
    /// the source built and published the ring (release) before it set the bit.
    /// </summary>
    private IpiRing IncomingRing(int source) => Volatile.Read(ref _shared.Outgoing[source][Id])!;

    /// <summary>True if a pass would find something to do. Cheap: called in the idle spin.</summary>
    private bool HasWork()
    {
        PaddedLong[] mask = _ipiMask;
        for (int w = 0; w < mask.Length; w++)
        {
            long bits = Volatile.Read(ref mask[w].Value);
            while (bits != 0)
            {
                int b = System.Numerics.BitOperations.TrailingZeroCount(bits);
                bits &= bits - 1;
                int source = (w << 6) + b;
                // A set ring bit only says the source has sent since we last parked: look at its write index (a
                // read of a line the producer writes only when it publishes, so a cache hit while nothing is new).
                if (source == _externalBit)
                {
                    // Posted tasks wait while the CPU is held (cpusync), like local ones: they must not keep it from idling.
                    if (Inbox.HasWork || (Posts.HasItem && !IsInterlocked())) return true;
                    continue;
                }
                if (IncomingRing(source).HasPublishedWork) return true;
            }
        }
        // A held CPU (cpusync) runs no tasks, soft interrupts or readiness handlers: pending ones must not keep it from idling.
        return ((_tasks.Count != 0 || HasSoftInterruptWork() || HasPendingIo) && !IsInterlocked()) || HasCpuSyncWork() || _stopRequested;
    }

    /// <summary>
    /// On the way to park: clears the sticky ring bits (a locked And) and remembers which it cleared in
    /// <see cref="_clearedBits"/>, for <see cref="RecheckClearedRings"/> to look at after the process-wide barrier.
    /// </summary>
    private void ClearRingBits()
    {
        PaddedLong[] mask = _ipiMask;
        long[] cleared = _clearedBits;
        for (int w = 0; w < mask.Length; w++)
        {
            long keep = (_externalBit >> 6) == w ? 1L << (_externalBit & 63) : 0;
            cleared[w] = (Volatile.Read(ref mask[w].Value) & ~keep) == 0 ? 0 : Interlocked.And(ref mask[w].Value, keep) & ~keep;
        }
    }

    /// <summary>
    /// After the Parked store and the process-wide barrier: a sender that found its bit still set before our clear
    /// skipped the locked Or, so look at each ring whose bit we cleared and set the bit again where work was published
    /// (then HasWork and the next pass see the ring). Returns true if any had work.
    /// </summary>
    private bool RecheckClearedRings()
    {
        PaddedLong[] mask = _ipiMask;
        long[] cleared = _clearedBits;
        bool any = false;
        for (int w = 0; w < cleared.Length; w++)
        {
            long bits = cleared[w], again = 0;
            while (bits != 0)
            {
                int b = System.Numerics.BitOperations.TrailingZeroCount(bits);
                bits &= bits - 1;
                if (IncomingRing((w << 6) + b).HasPublishedWork) again |= 1L << b;
            }
            if (again != 0)
            {
                Interlocked.Or(ref mask[w].Value, again);
                any = true;
            }
        }
        return any;
    }

    /// <summary>
    /// Nothing to do: spin for <see cref="CpuRuntimeOptions.IdleSpin"/> (none when it is zero), then park until a sender
    /// wakes us or the earliest timer is due; with no timer armed, until a sender wakes us (tickless: an idle CPU costs
    /// nothing; a passive message to a parked CPU gets a deferred wake instead, see <see cref="DeferPassiveWake"/>). The end of the seed's
    /// <c>lwkt_process_ipiq</c>: release the poll flag, fence, re-check for work, so that a sender either sees the flag
    /// released or we see its work.
    /// <para>
    /// The fence is asymmetric (the technique of Linux's <c>membarrier</c> and the .NET GC's suspension): a CPU sender
    /// publishes its write index and reads our mask and state with no fence of its own, so a stream or a ping-pong
    /// never stalls on its store buffer; the rare side, this CPU on its way to sleep, pays a process-wide barrier
    /// (<see cref="Interlocked.MemoryBarrierProcessWide"/>), which makes every other thread execute a full fence. A
    /// sender's fence point then falls either before its publication (its later reads see our cleared bit and Parked
    /// state, so it sets the bit and wakes us) or after it (our re-check below sees its write index).
    /// </para>
    /// </summary>
    private void Idle()
    {
        Own.Phase = StallPhase.Idle; Own.Running = null; Own.RunningState = null; // stall watchdog: idle is never a stall; an idle CPU keeps nothing alive
        CpuRuntimeOptions options = _shared.Options;
        if (Own.OverflowCount != 0)
        {
            // Messages wait in an overflow for room in a ring: no parking (nobody would wake us when room appears,
            // and a CPU must not sleep on work it has to hand on). Pause and let the loop move them.
            Spin.Pause();
            Thread.Yield();
            return;
        }
        if (options.PollMode)
        {
            // The clock is read every 64 pauses, and only while a timer is armed.
            for (int i = 1; !HasWork(); i++)
            {
                if ((i & 63) == 0 && (TimerDue() || PollIoWhileIdle())) return;
                Spin.Pause();
            }
            return;
        }
        if (HasWork() || TimerDue()) return;
        if (!Own.SkipSpin && _shared.IdleSpinTicks > 0)
        {
            // The clock is read from the 64th pause on: a reply that comes sooner (a ping-pong) costs no clock read.
            long until = 0;
            for (int i = 1; ; i++)
            {
                if (HasWork()) return;
                if ((i & 63) == 0)
                {
                    long now = Stopwatch.GetTimestamp();
                    if (now >= TimerDeadline) return; // a timer is due: back to the loop, which fires it
                    if (PollIoWhileIdle()) return; // readiness: its handlers scheduled softnet (a poll every 64 pauses, ~1.5 µs here)
                    if (until == 0) until = now + _shared.IdleSpinTicks;
                    else if (now >= until) break;
                }
                Spin.Pause();
            }
        }
        ClearRingBits();
        // Where we will sleep, decided before Parked is published: a waker reads it after its CAS on the state
        // (Cpu.Io.cs, WakeParked). A held CPU (cpusync) sleeps in the parker: readiness must not wake it.
        Reactor? reactor = _reactor is { } r && !IsInterlocked() ? r : null;
        _parkInReactor = reactor != null;
        Volatile.Write(ref _state.Value, StateParked);
        // Orders the clear and the Parked store before the re-checks below, against every sender (see above).
        // Also a full fence here, which the Dekker pairs with outside senders, cpusync and soft interrupts need.
        if (Platform.ProcessBarrier.UseAsymmetricFence) Interlocked.MemoryBarrierProcessWide();
        else Interlocked.MemoryBarrier(); // symmetric mode: every sender fences too (Flush)
        // Tickless (issue 12): sleep until the earliest timer, or until woken when no timer is armed. Messages
        // published before the barrier are seen by the re-checks; a normal send after it sees Parked and wakes us; a
        // passive send after it sees Parked and defers a wake by one TickInterval (Cpu.DeferPassiveWake), so passive
        // messages still run within a tick although nothing here wakes periodically.
        if (RecheckClearedRings() || HasWork() || !TryGetParkTimeout(out TimeSpan timeout))
        {
            // A sender may have claimed the wake in between; either way we are awake now (a stray permit only
            // makes one later park return early).
            Interlocked.CompareExchange(ref _state.Value, StateAwake, StateParked);
            return;
        }
        Counters.Parks++;
        if (reactor != null) ParkInReactor(reactor, timeout);
        else _parker.Park(timeout);
        if (Interlocked.CompareExchange(ref _state.Value, StateAwake, StateParked) == StateParked)
        {
            Own.SkipSpin = true; // a timer deadline (or a spurious return) ended the park, not a sender: no spin
        }
        else
        {
            Counters.WakesReceived++;
            Own.SkipSpin = false;
        }
    }

    /// <summary>
    /// Wakes this CPU if it is parked, claiming the duty with a CAS so that one wake serves many senders (seed:
    /// <c>atomic_poll_acquire_int(&amp;gd_npoll)</c> then <c>cpu_send_ipiq</c>). The caller must have made its work
    /// visible first (a store program-ordered before this call suffices: see <see cref="Idle"/>). Returns true if it
    /// issued a wake.
    /// </summary>
    internal bool TryWake()
    {
        if (Volatile.Read(ref _state.Value) == StateParked
            && Interlocked.CompareExchange(ref _state.Value, StateAwake, StateParked) == StateParked)
        {
            WakeParked();
            return true;
        }
        return false;
    }

    /// <summary>True while the CPU is parked (or about to park): a sender would have to wake it. For tests and diagnostics.</summary>
    internal bool IsParked => Volatile.Read(ref _state.Value) == StateParked;

    /// <summary>Wakes the CPU whatever its state (shutdown, cpusync): the next idle check sees the reason.</summary>
    internal void ForceWake()
    {
        if (Interlocked.Exchange(ref _state.Value, StateAwake) == StateParked) WakeParked();
    }

    /// <summary>
    /// A passive message to this CPU was published (ring index or inbox slot, then the mask bit) and the sender then read
    /// our state as Parked. Passive: we must not be woken now. Tickless: we may sleep forever. So the runtime wakes us
    /// one <see cref="CpuRuntimeOptions.TickInterval"/> later (<see cref="CpuRuntime.Shared.DeferWake"/>), which keeps
    /// "a passive message runs within one tick" without any periodic wake (DESIGN §9: the passive send arms the tick).
    /// <para>
    /// Why no message is stranded. A sender that reads Awake defers nothing, exactly like a normal send that reads
    /// Awake wakes nothing: by the park protocol (<see cref="Idle"/>) its publication is then seen by our next re-check
    /// before we sleep. A sender that reads Parked arms the deferred wake; when it fires, either we still sleep (the
    /// claimed wake, <see cref="TryWake"/>, ends the park) or we woke meanwhile; then the publication, made before the
    /// deferral's locked Or and the timer's exchange, is visible to every later re-check, so we cannot park again
    /// without draining it. A stale Parked read (we already woke) costs one wake that finds us awake (a CAS that fails).
    /// </para>
    /// </summary>
    internal void DeferPassiveWake()
    {
        if (Volatile.Read(ref _state.Value) == StateParked) _shared.DeferWake(this);
    }

    /// <summary>
    /// Work from outside (inbox or posts) is queued: sets the outside bit (a locked Or, so the queued entry is visible
    /// before we read the state) and wakes this CPU if it is parked. Returns true if it issued a wake.
    /// </summary>
    private bool RaiseExternalBitAndWake()
    {
        RaiseIpiBit(_externalBit);
        return TryWake();
    }

    /// <summary>Sets bit <paramref name="source"/> in this CPU's IPI mask. Interlocked: also a full fence.</summary>
    private void RaiseIpiBit(int source) => Interlocked.Or(ref _ipiMask[source >> 6].Value, 1L << (source & 63));

    /// <summary>
    /// After a ring from <paramref name="source"/> was published: makes sure this CPU will look at it. No fence: the
    /// parking side pays for the ordering (see <see cref="Idle"/>). The locked Or, which moves this line, is paid only
    /// when the bit is clear, i.e. once after each time we parked.
    /// </summary>
    private void NoteRingPublished(int source)
    {
        ref long word = ref _ipiMask[source >> 6].Value;
        long bit = 1L << (source & 63);
        if ((Volatile.Read(ref word) & bit) == 0) RaiseIpiBit(source);
    }

    // ------------------------------------------------------------------ running user code

    /// <summary>Runs one message; an exception is counted and reported, never allowed to stop the CPU or the messages behind it.</summary>
    internal void Invoke(Action<object?, long> func, object? arg1, long arg2, int source)
    {
        Trace?.Record(TraceEvent.Receive, source, Id, func, arg2);
        Own.Running = func; // stall watchdog
        try
        {
            func(arg1, arg2);
        }
        catch (Exception e)
        {
            ReportException(e, source);
        }
        Counters.Received++;
    }

    internal void ReportException(Exception e, int source)
    {
        Counters.Errors++;
        Runtime.RaiseUnhandledException(this, e, source);
    }

    // ------------------------------------------------------------------ tasks

    /// <summary>
    /// Queues task-level work on this CPU. From this CPU: its local queue. From another CPU of the runtime: through that
    /// CPU's ring, like any message (it must never block on a queue it cannot drain). From any other thread: the bounded
    /// <see cref="Posts"/> queue, waiting for room while it is full; once disposal has stopped the CPUs taking work
    /// (<see cref="CpuRuntime.DisposeAsync"/>), on the thread pool instead, so that nothing posted is ever dropped.
    /// </summary>
    internal void EnqueueTask(in TaskItem item)
    {
        Cpu? current = t_current;
        if (current == this)
        {
            _tasks.Enqueue(item);
            // Release: accepted before anything can count it finished (a task that posts another counts this first).
            Volatile.Write(ref Own.LocalTasksPosted, Own.LocalTasksPosted + 1);
            return;
        }
        if (current != null && current._shared == _shared)
        {
            // A message carries one object: a callback with state travels in a box (a rare path: a continuation
            // usually resumes on the CPU that awaited, which posts locally).
            if (item.State == null) current.SendFromCpu(this, s_enqueueCallback, item.Callback, 0, SendKind.Normal);
            else current.SendFromCpu(this, s_enqueueBoxed, new StrongBox<TaskItem>(item), 0, SendKind.Normal);
            return;
        }
        PostFromOutside(item);
    }

    private static readonly Action<object?, long> s_enqueueCallback = static (callback, _) => t_current!.EnqueueTask(new TaskItem(callback!, null));
    private static readonly Action<object?, long> s_enqueueBoxed = static (box, _) => t_current!.EnqueueTask(((StrongBox<TaskItem>)box!).Value);

    private void PostFromOutside(in TaskItem item)
    {
        CpuRuntime.Shared shared = _shared;
        if (!shared.EnterPost())
        {
            RunOnThreadPool(item);
            return;
        }
        try
        {
            long start = 0;
            while (Posts.TryEnqueue(item) == 0)
            {
                // Full: make sure the CPU is awake to run what fills it, then wait; warn (there is no caller to throw
                // to: a Post or a continuation must not fail) each time the wait passes WaitWarning.
                if (RaiseExternalBitAndWake()) CountWakeSent();
                if (start == 0) start = Stopwatch.GetTimestamp();
                if (!Posts.WaitForRoom(Environment.TickCount64 + (long)shared.Options.WaitWarning.TotalMilliseconds))
                    Runtime.RaiseWarning(this, $"A thread that is not a CPU of this runtime has waited {Stopwatch.GetElapsedTime(start).TotalSeconds:F1} s to post a task to CPU {Id}: " +
                        $"its {Posts.Capacity} task slots stay full. CPU {Id} may be stuck in a long-running function, or tasks are posted faster than it runs them.");
            }
            // Interlocked.Or is a full fence: the task is visible before we read the state in TryWake.
            if (RaiseExternalBitAndWake()) CountWakeSent();
        }
        finally
        {
            shared.ExitPost();
        }
    }

    /// <summary>A post that came after the CPUs stopped taking work: runs on the thread pool, where calls into the runtime are refused.</summary>
    private void RunOnThreadPool(in TaskItem item)
        => ThreadPool.UnsafeQueueUserWorkItem(static s =>
        {
            try { s.Item.Run(s.Cpu); }
            catch (Exception e) { s.Cpu.Runtime.RaiseUnhandledException(s.Cpu, e, ExternalSource); }
        }, (Cpu: this, Item: item), preferLocal: false);

    private static void CountWakeSent()
    {
        Cpu? self = t_current;
        if (self != null) self.Counters.WakesSent++;
    }
}
