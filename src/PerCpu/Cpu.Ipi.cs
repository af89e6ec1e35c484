using System.Diagnostics;
using System.Runtime.CompilerServices;
using PerCpu.Diagnostics;
using PerCpu.Dispatch;
using PerCpu.Ipi;

namespace PerCpu;

// Sending IPIs: lwkt_send_ipiq3 and its passive / nowait variants, sequence waits, and the flush of batched rings.
public sealed partial class Cpu
{
    internal enum SendKind { Normal, Passive, NoWait }

    /// <summary>
    /// Runs <paramref name="func"/>(<paramref name="arg1"/>, <paramref name="arg2"/>) on this CPU (seed:
    /// <c>lwkt_send_ipiq3</c>). From a CPU of the same runtime the message goes through that CPU's ring to this one,
    /// waking this CPU only if it sleeps; to itself the function is called at once. From any other thread it goes
    /// through this CPU's bounded inbox. Messages from one sender to one target run in the order sent, exactly once.
    /// </summary>
    /// <param name="func">The function; use a <c>static</c> lambda and pass state through the arguments so that nothing is allocated.</param>
    /// <param name="arg1">Passed to <paramref name="func"/>.</param>
    /// <param name="arg2">Passed to <paramref name="func"/>.</param>
    /// <returns>A sequence number to pass to <see cref="WaitFor(long)"/>.</returns>
    /// <exception cref="ObjectDisposedException">The runtime is disposed (from a thread that is not one of its CPUs).</exception>
    /// <exception cref="TimeoutException">The ring (or inbox) stayed full for <see cref="CpuRuntimeOptions.WaitTimeout"/>: this CPU is stuck in a function.</exception>
    public long Send(Action<object?, long> func, object? arg1 = null, long arg2 = 0)
    {
        ArgumentNullException.ThrowIfNull(func);
        return SendCore(func, arg1, arg2, SendKind.Normal);
    }

    /// <summary>Typed form of <see cref="Send(Action{object?, long}, object?, long)"/>: the argument reaches the function without a cast.</summary>
    /// <typeparam name="T">A reference type (no boxing).</typeparam>
    /// <param name="func">The function; use a <c>static</c> lambda.</param>
    /// <param name="arg1">Passed to <paramref name="func"/>.</param>
    /// <param name="arg2">Passed to <paramref name="func"/>.</param>
    /// <returns>A sequence number to pass to <see cref="WaitFor(long)"/>.</returns>
    public long Send<T>(Action<T, long> func, T arg1, long arg2 = 0) where T : class?
    {
        ArgumentNullException.ThrowIfNull(func);
        return SendCore(Erase(func), arg1, arg2, SendKind.Normal);
    }

    /// <summary>
    /// Like <see cref="Send(Action{object?, long}, object?, long)"/> but never wakes this CPU (seed:
    /// <c>lwkt_send_ipiq3_passive</c>): the message runs at this CPU's next pass or, if it sleeps, within about one
    /// <see cref="CpuRuntimeOptions.TickInterval"/> (a parked CPU has no periodic tick: the send arranges one wake a tick
    /// later, on a timer of the runtime). For work that is not urgent, such as freeing memory.
    /// </summary>
    /// <param name="func">The function; use a <c>static</c> lambda.</param>
    /// <param name="arg1">Passed to <paramref name="func"/>.</param>
    /// <param name="arg2">Passed to <paramref name="func"/>.</param>
    /// <returns>A sequence number to pass to <see cref="WaitFor(long)"/>.</returns>
    public long SendPassive(Action<object?, long> func, object? arg1 = null, long arg2 = 0)
    {
        ArgumentNullException.ThrowIfNull(func);
        return SendCore(func, arg1, arg2, SendKind.Passive);
    }

    /// <summary>Typed form of <see cref="SendPassive(Action{object?, long}, object?, long)"/>.</summary>
    /// <typeparam name="T">A reference type (no boxing).</typeparam>
    /// <param name="func">The function; use a <c>static</c> lambda.</param>
    /// <param name="arg1">Passed to <paramref name="func"/>.</param>
    /// <param name="arg2">Passed to <paramref name="func"/>.</param>
    /// <returns>A sequence number to pass to <see cref="WaitFor(long)"/>.</returns>
    public long SendPassive<T>(Action<T, long> func, T arg1, long arg2 = 0) where T : class?
    {
        ArgumentNullException.ThrowIfNull(func);
        return SendCore(Erase(func), arg1, arg2, SendKind.Passive);
    }

    /// <summary>
    /// Like <see cref="Send(Action{object?, long}, object?, long)"/> but never waits (seed: <c>lwkt_send_ipiq3_nowait</c>):
    /// returns <see langword="false"/>, sending nothing, when the ring is two-thirds full (from another thread: when the inbox is full).
    /// </summary>
    /// <param name="func">The function; use a <c>static</c> lambda.</param>
    /// <param name="arg1">Passed to <paramref name="func"/>.</param>
    /// <param name="arg2">Passed to <paramref name="func"/>.</param>
    /// <returns><see langword="true"/> if the message was accepted.</returns>
    public bool TrySend(Action<object?, long> func, object? arg1 = null, long arg2 = 0)
    {
        ArgumentNullException.ThrowIfNull(func);
        return SendCore(func, arg1, arg2, SendKind.NoWait) != 0;
    }

    /// <summary>Typed form of <see cref="TrySend(Action{object?, long}, object?, long)"/>.</summary>
    /// <typeparam name="T">A reference type (no boxing).</typeparam>
    /// <param name="func">The function; use a <c>static</c> lambda.</param>
    /// <param name="arg1">Passed to <paramref name="func"/>.</param>
    /// <param name="arg2">Passed to <paramref name="func"/>.</param>
    /// <returns><see langword="true"/> if the message was accepted.</returns>
    public bool TrySend<T>(Action<T, long> func, T arg1, long arg2 = 0) where T : class?
    {
        ArgumentNullException.ThrowIfNull(func);
        return SendCore(Erase(func), arg1, arg2, SendKind.NoWait) != 0;
    }

    /// <summary>Queues <paramref name="action"/> as a task on this CPU (after IPIs and soft interrupts), in order with this caller's sends.</summary>
    /// <param name="action">The work; a cached or static delegate allocates nothing.</param>
    public void Post(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        SendCore(s_post, action, 0, SendKind.Normal);
    }

    private static readonly Action<object?, long> s_post = static (action, _) => t_current!.EnqueueTask(new TaskItem(action!, null));

    /// <summary>
    /// A function that takes a <typeparamref name="T"/> is called with an object that is one: reinterpreting the
    /// delegate is sound because the ring hands back exactly the argument given with it.
    /// </summary>
    private static Action<object?, long> Erase<T>(Action<T, long> func) where T : class?
        => Unsafe.As<Action<object?, long>>(func);

    private long SendCore(Action<object?, long> func, object? arg1, long arg2, SendKind kind)
    {
        Cpu? self = t_current;
        if (self != null && self._shared == _shared)
        {
            long seq;
            if (kind == SendKind.Normal && (seq = self.TrySendFast(this, func, arg1, arg2)) != 0) return seq;
            return self.SendFromCpu(this, func, arg1, arg2, kind);
        }
        if (self != null) throw ForeignCpu(self);
        return SendFromOutside(func, arg1, arg2, kind);
    }

    internal InvalidOperationException ForeignCpu(Cpu self) => new(
        $"CPU {self.Id} of another CpuRuntime cannot send to CPU {Id} of this one: a CPU thread must never block on a " +
        "foreign runtime's queue. Send from a thread that is not a CPU (for example with Task.Run), or keep the work in one runtime.");

    /// <summary>
    /// The common case of <see cref="SendFromCpu"/>, small enough to inline: a normal send to another CPU through a ring
    /// that has room by the producer's own view and nothing overflowed, with tracing off. Returns 0 (no sequence is 0)
    /// when any of that does not hold; <see cref="SendFromCpu"/> then does the whole send. A stream of sends within one
    /// pass stays here and only writes entries: the ring is already published early and listed, and a batch is not yet full.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long TrySendFast(Cpu target, Action<object?, long> func, object? arg1, long arg2)
    {
        IpiRing? ring = _outgoing[target.Id]; // null for this CPU itself: a send to self is a direct call
        if (ring == null || Trace != null || ring.UsedByProducerView > ring.Capacity >> 1 || ring.OverflowCount != 0) return 0;
        long seq = ring.Write(func, arg1, arg2);
        ring.P.Unwoken++;
        Counters.Sent++;
        if (ring.P.EagerEpoch != Own.FlushEpoch || !ring.P.Listed || seq - ring.W.Value >= IpiRing.FlushBatch) AfterWrite(ring, target, seq);
        return seq;
    }

    /// <summary>
    /// The send path of a CPU thread (this = the source).
    /// <para>
    /// Room (seed: <c>lwkt_send_ipiq3</c>): a send made at the top of the loop does not let the ring pass half full; it
    /// waits for the ring to fall to a quarter, running meanwhile only what a cycle of waits needs (see
    /// <see cref="WaitUntil{TCondition}(ref TCondition, Cpu, WaitReason, long, string?)"/>). A send made by a function
    /// that runs inside such a wait never waits itself (issue 11 A: nesting waits, once bounded by a depth that threw,
    /// lost messages): it fills the ring nearly to capacity (DragonFly 2016) and past that joins the ring's overflow,
    /// which moves into the ring, in order, as room appears (every <see cref="FlushAll"/>).
    /// </para>
    /// <para>
    /// Why the overflow is bounded: it only grows inside a wait, by what the functions run there send. A wait runs
    /// everything incoming only while the CPU's overflows hold fewer than FifoCapacity messages, and one turn of its
    /// loop runs at most what was published to it then (an inbox and a ring per source); past that it runs only the
    /// ring of the CPU that closes a cycle of waits with it (a CPU outside such a cycle makes progress on its own).
    /// The members of a cycle run nothing else until it breaks, so the messages among them are those already in their
    /// rings and overflows plus what the functions they run send: for functions that send at most k messages each,
    /// a CPU's overflows hold at most FifoCapacity + k × (InboxCapacity + (CpuCount − 1) × FifoCapacity) per level of
    /// nested wait, plus, in a cycle of forwarding functions (k = 1), nothing more: the total in a cycle never grows.
    /// Functions that send more than they receive around a cycle make the program's own work unbounded.
    /// </para>
    /// </summary>
    private long SendFromCpu(Cpu target, Action<object?, long> func, object? arg1, long arg2, SendKind kind)
    {
        Counters.Sent++;
        Trace?.Record(kind switch { SendKind.Passive => TraceEvent.SendPasv, SendKind.NoWait => TraceEvent.SendNbio, _ => TraceEvent.SendNorm }, Id, target.Id, func, arg2);
        if (target == this)
        {
            // Seed: a send to the current CPU calls the function directly.
            if (kind == SendKind.Passive) Counters.Passive++;
            Own.SelfSeq++;
            Invoke(func, arg1, arg2, Id);
            Trace?.Record(TraceEvent.SendEnd, Id, Id, func, arg2);
            return Own.SelfSeq;
        }

        IpiRing ring = _outgoing[target.Id] ?? CreateRing(target.Id);
        if (kind == SendKind.NoWait)
        {
            long limit = ring.Capacity * 2 / 3;
            if (ring.OverflowCount != 0 || (ring.UsedByProducerView >= limit && ring.P.WLocal - ring.RefreshReadIndex() >= limit))
            {
                Counters.SendFailed++;
                Trace?.Record(TraceEvent.SendFail, Id, target.Id, func, arg2);
                Flush(ring, target); // the target may not have seen what fills the ring yet
                WakeFor(target); // it may hold only passive entries: a refused sender wants it to make room
                return 0;
            }
        }
        else
        {
            long high = Own.WaitDepth == 0 ? ring.Capacity / 2 : ring.Capacity - 3;
            if (ring.OverflowCount != 0 || (ring.UsedByProducerView > high && ring.P.WLocal - ring.RefreshReadIndex() > high))
            {
                if (Own.WaitDepth > 0) return SendToOverflow(ring, target, func, arg1, arg2, kind);
                WaitForRoom(ring, target);
            }
        }

        long seq = ring.Write(func, arg1, arg2);
        if (kind == SendKind.Passive) Counters.Passive++;
        else ring.P.Unwoken++;
        AfterWrite(ring, target, seq);
        Trace?.Record(TraceEvent.SendEnd, Id, target.Id, func, arg2);
        return seq;
    }

    /// <summary>A send made inside a wait, to a ring without room: accepted into the ring's overflow (see <see cref="SendFromCpu"/>).</summary>
    private long SendToOverflow(IpiRing ring, Cpu target, Action<object?, long> func, object? arg1, long arg2, SendKind kind)
    {
        Counters.FifoFull++;
        if (ring.OverflowCount == 0)
        {
            if (Own.OverflowCount == _overflowing.Length) Array.Resize(ref _overflowing, _overflowing.Length * 2);
            _overflowing[Own.OverflowCount++] = ring;
        }
        long seq = ring.AppendOverflow(func, arg1, arg2);
        Own.OverflowEntries++;
        if (kind == SendKind.Passive) Counters.Passive++;
        else ring.P.Unwoken++;
        // The ring is full: make sure the target sees it and is awake to make room.
        Flush(ring, target);
        WakeFor(target);
        Trace?.Record(TraceEvent.SendEnd, Id, target.Id, func, arg2);
        return seq;
    }

    /// <summary>Wakes <paramref name="target"/> if it is parked (a sender that needs it to make progress), counting the wake.</summary>
    private void WakeFor(Cpu target)
    {
        if (target.TryWake())
        {
            Counters.WakesSent++;
            Trace?.Record(TraceEvent.CpuSend, Id, target.Id, null, 0);
        }
    }

    /// <summary>
    /// Batched publication, after an entry was written: publish at the end of this pass, or every FlushBatch messages.
    /// For latency, the first message of a pass to a ring is also published at once (flush epoch): a reply, or the
    /// first of a burst, does not wait for the end of a long function, and a stream of sends still costs one
    /// publication per batch.
    /// </summary>
    private void AfterWrite(IpiRing ring, Cpu target, long seq)
    {
        if (ring.P.EagerEpoch != Own.FlushEpoch)
        {
            ring.P.EagerEpoch = Own.FlushEpoch;
            Flush(ring, target); // everything is published: the ring joins the flush list only if more follows
        }
        else
        {
            if (!ring.P.Listed) ListForFlush(ring);
            if (seq - ring.W.Value >= IpiRing.FlushBatch) Flush(ring, target);
        }
    }

    private IpiRing CreateRing(int target)
    {
        var ring = new IpiRing(Id, target, _shared.Options.FifoCapacity);
        // Release: the ring is fully built before the target can read it (it looks only after a mask bit we set later).
        Volatile.Write(ref _outgoing[target], ring);
        _shared.Cpus[target].AddIncomingRing(ring); // for the stall watchdog (once per pair of CPUs)
        return ring;
    }

    private void ListForFlush(IpiRing ring)
    {
        if (Own.FlushCount == _flushList.Length) Array.Resize(ref _flushList, _flushList.Length * 2);
        _flushList[Own.FlushCount++] = ring;
        ring.P.Listed = true;
    }

    /// <summary>Publishes one ring, sets our bit in the target's mask and wakes the target if it sleeps and a non-passive message wants it.</summary>
    private void Flush(IpiRing ring, Cpu target)
    {
        if (!ring.Publish()) return;
        // No fence between the release above and the reads of the target's mask and state: see Cpu.Idle. Where the
        // process-wide barrier cannot be trusted to interrupt this core (ARM64 without membarrier), the sender pays a
        // full fence here instead (issue 11 item 10).
        if (!Platform.ProcessBarrier.UseAsymmetricFence) Interlocked.MemoryBarrier();
        target.NoteRingPublished(Id);
        int unwoken = ring.P.Unwoken;
        if (unwoken == 0)
        {
            // Passive only: the target finds it at its next pass; if it is parked, within a tick (a deferred wake).
            target.DeferPassiveWake();
            return;
        }
        ring.P.Unwoken = 0;
        if (target.TryWake())
        {
            Trace?.Record(TraceEvent.CpuSend, Id, target.Id, null, unwoken);
            Counters.WakesSent++;
            Counters.Avoided += unwoken - 1;
        }
        else
        {
            Counters.Avoided += unwoken;
        }
    }

    /// <summary>
    /// Publishes every ring with unpublished entries, after moving what overflowed into rings that have room again:
    /// end of pass, before parking, in every turn of a wait.
    /// </summary>
    internal void FlushAll()
    {
        if (Own.OverflowCount != 0) MoveOverflows();
        Own.FlushEpoch++;
        IpiRing[] list = _flushList;
        Cpu[] cpus = _shared.Cpus;
        for (int i = 0; i < Own.FlushCount; i++)
        {
            IpiRing ring = list[i];
            ring.P.Listed = false;
            Flush(ring, cpus[ring.Target]);
        }
        Own.FlushCount = 0;
    }

    /// <summary>Moves overflowed messages into their rings where there is room; a ring whose overflow empties leaves the list.</summary>
    private void MoveOverflows()
    {
        IpiRing[] rings = _overflowing;
        for (int i = 0; i < Own.OverflowCount;)
        {
            IpiRing ring = rings[i];
            bool empty = ring.MoveOverflow(out int moved);
            Own.OverflowEntries -= moved;
            if (moved != 0 && !ring.P.Listed) ListForFlush(ring);
            if (empty)
            {
                rings[i] = rings[--Own.OverflowCount];
                rings[Own.OverflowCount] = null!;
            }
            else
            {
                i++;
            }
        }
    }

    /// <summary>
    /// A top-level send found the ring past half full (or messages waiting in its overflow): wait until the overflow
    /// has moved into the ring and the ring is down to a quarter (seed: drain until the FIFO falls to a quarter).
    /// </summary>
    private void WaitForRoom(IpiRing ring, Cpu target)
    {
        Counters.FifoFull++;
        var room = new RingHasRoom(ring, ring.Capacity / 4);
        WaitUntil(ref room, target, WaitReason.RingRoom, 0);
    }

    /// <summary>
    /// Returns once <paramref name="sequence"/> (from a send by the calling thread to this CPU) has run here and its
    /// function has returned (seed: <c>lwkt_wait_ipiq</c>). A CPU caller keeps processing its own incoming IPIs while
    /// it waits, so two CPUs waiting on each other cannot deadlock. Raises <see cref="CpuRuntime.Warning"/> after
    /// <see cref="CpuRuntimeOptions.WaitWarning"/>.
    /// </summary>
    /// <param name="sequence">A value returned by a send from the calling thread (CPU) or from any non-CPU thread (inbox).</param>
    /// <exception cref="ArgumentOutOfRangeException">No such sequence was ever sent: waiting would never end.</exception>
    /// <exception cref="TimeoutException">The message has not run after <see cref="CpuRuntimeOptions.WaitTimeout"/>; the message names both CPUs and how far behind this one is.</exception>
    public void WaitFor(long sequence)
    {
        Cpu? self = t_current;
        if (self != null && self._shared != _shared) throw ForeignCpu(self);
        if (self == null)
        {
            WaitFromOutside(sequence);
            return;
        }
        if (self == this)
        {
            if (sequence > Own.SelfSeq)
                throw new ArgumentOutOfRangeException(nameof(sequence), sequence,
                    $"CPU {Id} cannot wait for its own future sequence {sequence} (it has called itself {Own.SelfSeq} times): a send to the current CPU runs at once, so a later sequence would never come.");
            return;
        }
        IpiRing? ring = self._outgoing[Id];
        long written = ring?.P.Accepted ?? 0;
        if (sequence > written)
            throw new ArgumentOutOfRangeException(nameof(sequence), sequence,
                $"CPU {self.Id} has sent only {written} messages to CPU {Id}; wait for a sequence returned by Send.");
        if (ring == null || Volatile.Read(ref ring.X.XIndex) >= sequence) return;
        var done = new RingExecuted(ring, sequence);
        self.WaitUntil(ref done, this, WaitReason.Sequence, sequence);
    }

    /// <summary>
    /// Completes once <paramref name="sequence"/> (from a send by the calling thread to this CPU) has run here and its
    /// function has returned: <see cref="WaitFor(long)"/> without blocking a thread that is not a CPU.
    /// <para>
    /// From a thread that is not a CPU (the case it is for): returns a pending task at once if the message has not run,
    /// completed by the thread pool when it has; no thread waits meanwhile, and there is no
    /// <see cref="CpuRuntimeOptions.WaitTimeout"/>: pass a token to give up. On a CPU of this runtime it waits as
    /// <see cref="WaitFor(long)"/> does (processing its own incoming IPIs) and returns a completed task.
    /// </para>
    /// </summary>
    /// <param name="sequence">A value returned by a send from the calling thread (CPU) or from any non-CPU thread (inbox).</param>
    /// <param name="cancellationToken">Stops the wait (the message itself still runs); the task is then cancelled.</param>
    /// <returns>A task that completes when the message has run.</returns>
    /// <exception cref="ArgumentOutOfRangeException">No such sequence was ever sent: waiting would never end.</exception>
    /// <exception cref="InvalidOperationException">Called on a CPU of another runtime.</exception>
    public ValueTask WaitForAsync(long sequence, CancellationToken cancellationToken = default)
    {
        Cpu? self = t_current;
        if (self != null && self._shared != _shared) throw ForeignCpu(self);
        if (self != null)
        {
            if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
            try
            {
                WaitFor(sequence);
                return default;
            }
            catch (TimeoutException e)
            {
                return ValueTask.FromException(e);
            }
        }
        long enqueued = Inbox.EnqueuedCount;
        if (sequence > enqueued)
            throw new ArgumentOutOfRangeException(nameof(sequence), sequence,
                $"CPU {Id}'s inbox has accepted only {enqueued} messages; wait for a sequence returned by Send from a thread that is not a CPU.");
        if (Inbox.Executed >= sequence) return default;
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
        return new ValueTask(Inbox.WaitForSequenceAsync(sequence, cancellationToken));
    }

    private void WaitFromOutside(long sequence)
    {
        long enqueued = Inbox.EnqueuedCount;
        if (sequence > enqueued)
            throw new ArgumentOutOfRangeException(nameof(sequence), sequence,
                $"CPU {Id}'s inbox has accepted only {enqueued} messages; wait for a sequence returned by Send from a thread that is not a CPU.");
        if (Inbox.Executed >= sequence) return;
        long start = Stopwatch.GetTimestamp();
        bool warned = false;
        var spinner = new SpinWait();
        while (Inbox.Executed < sequence)
        {
            spinner.SpinOnce();
            CheckWait(start, ref warned, ExternalSource, WaitReason.InboxSequence, sequence, null, sequence - Inbox.Executed);
        }
        _shared.Metrics?.RecordWait(ExternalSource, RuntimeMetrics.WaitKind.InboxSequence, start);
    }

    /// <summary>A condition a CPU spins on while it keeps draining its own IPIs.</summary>
    internal interface IWaitCondition
    {
        bool IsMet { get; }
        long Lag { get; }
    }

    private readonly struct RingHasRoom(IpiRing ring, long low) : IWaitCondition
    {
        public bool IsMet => ring.OverflowCount == 0 && ring.P.WLocal - ring.RefreshReadIndex() <= low;
        public long Lag => ring.P.WLocal - ring.P.RCache + ring.OverflowCount - low;
    }

    private readonly struct RingExecuted(IpiRing ring, long sequence) : IWaitCondition
    {
        public bool IsMet => Volatile.Read(ref ring.X.XIndex) >= sequence;
        public long Lag => sequence - Volatile.Read(ref ring.X.XIndex);
    }

    internal enum WaitReason { RingRoom, Sequence, InboxSequence, Custom }

    /// <summary>Waits nested deeper than this run nothing while they wait (only flush and wake): the stack stays bounded.</summary>
    internal const int MaxDrainDepth = 32;

    /// <summary>
    /// The CPU this one waits on, plus one (0: not waiting). Written by the owner when a wait starts and ends (the
    /// innermost wait's target); read by other waiting CPUs to find cycles of waits (<see cref="CyclePredecessor"/>).
    /// On a line of its own: senders read this object on every send.
    /// </summary>
    private PaddedLong _waitingOn;

    /// <summary>As the other overload, with a description for the warning and the timeout (keep it a constant on hot paths).</summary>
    internal void WaitUntil<TCondition>(ref TCondition condition, Cpu target, string what) where TCondition : struct, IWaitCondition
        => WaitUntil(ref condition, target, WaitReason.Custom, 0, what);

    /// <summary>
    /// The seed's wait loop: publish what we sent, then until the condition holds keep the CPUs that may be waiting on
    /// us going, wake the target if it sleeps (it may hold only passive messages, which wake nobody), and pause. Warns
    /// once per <see cref="CpuRuntimeOptions.WaitWarning"/>, gives up after <see cref="CpuRuntimeOptions.WaitTimeout"/>
    /// (the kernel panics; a library must not).
    /// <para>
    /// What runs while waiting (issue 11 A): everything incoming (rings, inbox, cpusync requests), as long as this
    /// CPU's overflows hold fewer than <see cref="CpuRuntimeOptions.FifoCapacity"/> messages: another CPU, or an outside
    /// cpusync master, may need us to run its messages before what we wait for can happen. Past that, only the ring
    /// of the CPU that closes a cycle of waits through us (we wait on the target, the target on another … on a CPU
    /// that waits on us): that is the one way waits among CPUs can deadlock, and running that CPU's messages breaks
    /// the cycle, while running anything else would let a flood through the very CPU that is out of room (each
    /// message run here may send to the full ring, into its overflow). A cpusync wait always runs everything: claims
    /// and acknowledgements can come from any master, and such waits are short.
    /// </para>
    /// </summary>
    internal void WaitUntil<TCondition>(ref TCondition condition, Cpu target, WaitReason reason, long detail, string? what = null) where TCondition : struct, IWaitCondition
    {
        long previous = _waitingOn.Value;
        Own.WaitDepth++;
        Volatile.Write(ref _waitingOn.Value, target.Id + 1);
        try
        {
            FlushAll();
            if (condition.IsMet) return;
            bool drain = Own.WaitDepth <= MaxDrainDepth;
            long start = Stopwatch.GetTimestamp();
            bool warned = false;
            for (int spins = 1; !condition.IsMet; spins++)
            {
                if (drain)
                {
                    if (reason == WaitReason.Custom || Own.OverflowEntries < _shared.Options.FifoCapacity) ProcessIpis();
                    else DrainWaitCycle(target);
                }
                FlushAll();
                if (target != this) WakeFor(target);
                // Spin; past a while, also yield the core now and then: when CPUs outnumber cores (or the host
                // descheduled a vCPU) the CPU we wait for may need this very core to make progress.
                if (spins < 256 || (spins & 15) != 0) Spin.Pause();
                else Thread.Yield();
                if ((spins & 255) == 0) target.CheckWait(start, ref warned, Id, reason, detail, what, condition.Lag);
            }
            _shared.Metrics?.RecordWait(Id, reason switch
            {
                WaitReason.RingRoom => RuntimeMetrics.WaitKind.RingRoom,
                WaitReason.Sequence => RuntimeMetrics.WaitKind.Sequence,
                WaitReason.InboxSequence => RuntimeMetrics.WaitKind.InboxSequence,
                _ => RuntimeMetrics.WaitKind.Other,
            }, start);
        }
        finally
        {
            Own.WaitDepth--;
            Volatile.Write(ref _waitingOn.Value, previous);
        }
    }

    /// <summary>
    /// In a wait on <paramref name="target"/>: if following the waits from the target leads back to this CPU, drain
    /// the ring of the CPU that waits on us to close that cycle; and poll the cpusync slot (a release may arrive).
    /// </summary>
    private void DrainWaitCycle(Cpu target)
    {
        Cpu? predecessor = CyclePredecessor(target);
        if (predecessor != null && Volatile.Read(ref _shared.Outgoing[predecessor.Id][Id]) is { } ring) ring.Drain(this);
        ProcessCpuSyncQueue();
    }

    /// <summary>
    /// Follows the waits from <paramref name="target"/> (each waiting CPU's innermost wait); returns the CPU whose wait
    /// is on this one if the chain comes back here, else null. Racy reads: a wrong answer costs one turn of the wait
    /// loop, which asks again; a real cycle is stable (its members wait until it breaks), so it is always found.
    /// </summary>
    private Cpu? CyclePredecessor(Cpu target)
    {
        Cpu[] cpus = _shared.Cpus;
        Cpu t = target;
        for (int steps = 0; steps < cpus.Length; steps++)
        {
            long on = Volatile.Read(ref t._waitingOn.Value) - 1;
            if (on < 0) return null;
            if (on == Id) return t;
            t = cpus[on];
        }
        return null;
    }

    /// <summary>Warns, then times out, a wait on this CPU (this = the CPU waited for). Builds strings only when it reports.</summary>
    internal void CheckWait(long start, ref bool warned, string waiter, string what, long lag)
        => CheckWait(start, ref warned, ExternalSource, WaitReason.Custom, 0, $"{waiter}: {what}", lag);

    internal void CheckWait(long start, ref bool warned, int waiter, WaitReason reason, long detail, string? custom, long lag)
    {
        TimeSpan elapsed = Stopwatch.GetElapsedTime(start);
        CpuRuntimeOptions options = _shared.Options;
        // The warning first: a waiter kept off its core past both thresholds still warns before it gives up.
        if (!warned && elapsed >= options.WaitWarning)
        {
            warned = true;
            Runtime.RaiseWarning(this, $"{Describe(waiter, reason, detail, custom)} {elapsed.TotalSeconds:F1} s so far; it is {lag} message(s) behind.");
        }
        if (elapsed >= options.WaitTimeout)
            throw new TimeoutException(
                $"{Describe(waiter, reason, detail, custom)} {elapsed.TotalSeconds:F1} s; it is {lag} message(s) behind. " +
                $"CPU {Id} is probably stuck in a long-running function: move long work to tasks, or raise CpuRuntimeOptions.WaitTimeout.");
    }

    private string Describe(int waiter, WaitReason reason, long detail, string? custom)
    {
        string who = waiter == ExternalSource ? "A thread that is not a CPU" : $"CPU {waiter}";
        string what = reason switch
        {
            WaitReason.RingRoom => $"for room in its IPI ring to CPU {Id}",
            WaitReason.Sequence => $"for CPU {Id} to run IPI sequence {detail}",
            WaitReason.InboxSequence => $"for CPU {Id} to run inbox sequence {detail}",
            _ => $"on CPU {Id} ({custom})",
        };
        return $"{who} has waited {what} for";
    }

    /// <summary>The send path of threads that are not CPUs of this runtime: the bounded inbox.</summary>
    private long SendFromOutside(Action<object?, long> func, object? arg1, long arg2, SendKind kind)
    {
        CpuRuntime.Shared shared = _shared;
        shared.EnterOutsideCall(); // throws ObjectDisposedException once disposal has begun
        try
        {
            return SendFromOutsideEntered(func, arg1, arg2, kind);
        }
        finally
        {
            shared.ExitOutsideCall();
        }
    }

    /// <summary>A normal send from a thread that is not a CPU, for a caller that has entered the outside-call fence itself (one fence for a whole broadcast).</summary>
    internal long SendOutsideEntered(Action<object?, long> func, object? arg1, long arg2) => SendFromOutsideEntered(func, arg1, arg2, SendKind.Normal);

    private long SendFromOutsideEntered(Action<object?, long> func, object? arg1, long arg2, SendKind kind)
    {
        CpuRuntime.Shared shared = _shared;
        Diagnostics.CpuCounters external = shared.External;
        // Like the seed's ipiq_count (and the CPU path): every call counts, refused ones included.
        Interlocked.Increment(ref external.Sent);
        long ticket = Inbox.TryEnqueue(func, arg1, arg2);
        if (ticket == 0)
        {
            // The inbox may be full of passive entries, which wake nobody: a refused or waiting sender wakes the CPU
            // so that it makes room (issue 11 item 2). Interlocked.Or orders our look at its state after its entries.
            if (RaiseExternalBitAndWake()) Interlocked.Increment(ref external.WakesSent);
            if (kind == SendKind.NoWait)
            {
                Interlocked.Increment(ref external.SendFailed);
                return 0;
            }
            Interlocked.Increment(ref external.FifoFull);
            long start = Stopwatch.GetTimestamp();
            long deadline = Environment.TickCount64 + (long)shared.Options.WaitTimeout.TotalMilliseconds;
            while ((ticket = Inbox.TryEnqueue(func, arg1, arg2)) == 0)
            {
                if (!Inbox.WaitForRoom(deadline))
                    throw new TimeoutException(
                        $"CPU {Id}'s inbox stayed full for {shared.Options.WaitTimeout.TotalSeconds:F1} s: CPU {Id} is probably stuck in a long-running function. " +
                        "Use TrySend to shed load, or raise CpuRuntimeOptions.WaitTimeout, or await InvokeAsync, which waits for room without blocking.");
            }
            shared.Metrics?.RecordWait(ExternalSource, RuntimeMetrics.WaitKind.InboxRoom, start);
        }
        // Interlocked.Or is a full fence: the slot is visible before we read the state in TryWake.
        RaiseIpiBit(_externalBit);
        if (kind == SendKind.Passive)
        {
            Interlocked.Increment(ref external.Passive);
            DeferPassiveWake(); // parked: woken a tick from now, not now
        }
        else if (TryWake()) Interlocked.Increment(ref external.WakesSent);
        else Interlocked.Increment(ref external.Avoided);
        return ticket;
    }

    /// <summary>
    /// Work this CPU's rings (with their overflows), inbox and task queues have accepted, for the shutdown quiescence
    /// check (<see cref="CpuRuntime.IsQuiescent"/>). Every term only grows, and each is counted before the work it
    /// counts can run (a release store, or an interlocked claim).
    /// </summary>
    internal long AcceptedWork()
    {
        long n = Inbox.EnqueuedCount + Posts.EnqueuedCount + Volatile.Read(ref Own.LocalTasksPosted) + Volatile.Read(ref Own.AsyncStarted);
        foreach (IpiRing? ring in _outgoing)
            if (ring != null) n += Volatile.Read(ref ring.P.Accepted);
        return n + AcceptedSoftInterruptWork() + AcceptedCpuSyncWork();
    }

    /// <summary>
    /// The other half of <see cref="AcceptedWork"/>: what has finished (rings are counted on their source side). Every
    /// term is written with a release store after the work it counts, so a reader that sees it (acquire) also sees
    /// every "accepted" count that work made before.
    /// </summary>
    internal long FinishedWork()
    {
        long n = Inbox.Executed + Volatile.Read(ref Own.TasksRun) + Volatile.Read(ref Own.PostsRun) + Volatile.Read(ref Own.AsyncFinished);
        foreach (IpiRing? ring in _outgoing)
            if (ring != null) n += Volatile.Read(ref ring.X.XIndex);
        return n + FinishedSoftInterruptWork() + FinishedCpuSyncWork();
    }
}
