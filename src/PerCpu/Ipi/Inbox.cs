using System.Diagnostics;

namespace PerCpu.Ipi;

/// <summary>
/// A CPU's bounded queue for calls from threads that are not CPUs (thread pool, <c>Main</c>, another runtime). Such
/// threads have no incoming IPI queue to drain, so when the inbox is full they wait (<see cref="WaitForRoom"/>), fail
/// (<see cref="Cpu.TrySend(Action{object?, long}, object?, long)"/>), or, for asynchronous calls, join a FIFO of
/// waiters (<see cref="InboxWaiter"/>) that a pump moves into the inbox as room appears, without blocking anyone:
/// memory stays bounded by the inbox plus one operation per waiting caller, as in a bounded <c>Channel</c>.
/// <para>
/// Asynchronous waits for an executed sequence (<see cref="Cpu.WaitForAsync"/> from outside) are completed by the same
/// pump. The consumer never takes the waiter lock: after each drain it reads <see cref="_outsideWaiters"/> (after the
/// drain's full fence) and, if anyone waits, queues the pump on the thread pool.
/// </para>
/// </summary>
[DebuggerDisplay("Inbox: enqueued {EnqueuedCount}, done {_xindex.Value}")]
internal sealed class Inbox : IThreadPoolWorkItem
{
    private readonly BoundedQueue<IpiEntry> _queue;
    private readonly Cpu _owner;

    /// <summary>Tickets below it have returned; released by the consumer, read by waiting producers and the shutdown check.</summary>
    private PaddedLong _xindex;

    /// <summary>Inbox functions on the consumer's stack (consumer only).</summary>
    private int _active;

    /// <summary>Guards the waiter FIFO and the sequence waiters. Never taken by the consumer (the CPU).</summary>
    private readonly object _waitGate = new();

    /// <summary>FIFO of calls waiting for room (under <see cref="_waitGate"/>).</summary>
    private InboxWaiter? _head, _tail;

    /// <summary>Waits for an executed sequence (under <see cref="_waitGate"/>; created on first use).</summary>
    private List<SequenceWaiter>? _sequenceWaiters;

    /// <summary>
    /// Room waiters plus sequence waiters. Changed under <see cref="_waitGate"/> with atomics (a full fence before the
    /// waiter's re-check of room or sequence); read by the consumer after its drain's full fence: either it sees the
    /// waiter or the waiter sees what it freed.
    /// </summary>
    private int _outsideWaiters;

    /// <summary>1 while the pump is queued on the thread pool (CAS by the consumer; reset by the pump before it looks).</summary>
    private int _pumpQueued;

    internal Inbox(Cpu owner, int capacity)
    {
        _owner = owner;
        _queue = new BoundedQueue<IpiEntry>(capacity);
    }

    internal long EnqueuedCount => _queue.EnqueuedCount;

    internal long Executed => Volatile.Read(ref _xindex.Value);

    /// <summary>Entries waiting to run (racy: a gauge).</summary>
    internal long Depth => Math.Max(0, _queue.EnqueuedCount - _queue.DequeuedCount);

    /// <summary>
    /// True while calls wait for room (a racy read of the FIFO's head, written under the lock): a new asynchronous call
    /// then queues behind them instead of taking a slot the pump is about to give them, so one caller's calls keep their
    /// order (its earlier call joined the FIFO before its later call looks).
    /// </summary>
    internal bool HasRoomWaiters => Volatile.Read(ref _head) != null;

    /// <summary>Calls and sequence waits from outside waiting on this inbox (racy: a gauge).</summary>
    internal int OutsideWaiters => Volatile.Read(ref _outsideWaiters);

    /// <summary>Producer (any thread): enqueues and returns the ticket (1-based sequence), or 0 when full.</summary>
    internal long TryEnqueue(Action<object?, long> func, object? arg1, long arg2)
        => _queue.TryEnqueue(new IpiEntry { Func = func, Arg1 = arg1, Arg2 = arg2 });

    /// <summary>Consumer: true if the next slot holds an entry.</summary>
    internal bool HasWork => _queue.HasItem;

    /// <summary>Consumer: runs the entries present now, at most one inbox's worth. Re-entrant like <see cref="IpiRing.Drain"/>.</summary>
    internal int Drain(Cpu consumer)
    {
        int ran = 0;
        int budget = _queue.Capacity;
        while (ran < budget && _queue.TryDequeue(out IpiEntry e))
        {
            _active++;
            consumer.Invoke(e.Func!, e.Arg1, e.Arg2, Cpu.ExternalSource);
            // Release: the function's effects (and what it counted as accepted) are visible to whoever sees it done.
            if (--_active == 0) Volatile.Write(ref _xindex.Value, _queue.DequeuedCount);
            ran++;
        }
        if (ran > 0)
        {
            _queue.NotifyRoom(); // a full fence: freed slots and _xindex before the look at the waiters
            if (Volatile.Read(ref _outsideWaiters) != 0) QueuePump();
        }
        return ran;
    }

    /// <summary>Producer: sleeps until the consumer frees a slot or the deadline passes (returns false then).</summary>
    internal bool WaitForRoom(long deadlineTicks) => _queue.WaitForRoom(deadlineTicks);

    // ------------------------------------------------------------------ asynchronous waiters

    /// <summary>
    /// Any thread that is not a CPU, inside the outside-call fence (which the waiter keeps until it is accepted or
    /// cancelled): <paramref name="waiter"/> found the inbox full; it joins the FIFO, and is enqueued by the pump when
    /// room appears, or leaves it, never to run, if <paramref name="cancellationToken"/> fires first.
    /// </summary>
    internal void AddRoomWaiter(InboxWaiter waiter, CancellationToken cancellationToken)
    {
        waiter.WaitRegistration = default;
        waiter.WaitInbox = this;
        waiter.WaitStart = Stopwatch.GetTimestamp();
        if (cancellationToken.CanBeCanceled) waiter.Unpooled = true;
        lock (_waitGate)
        {
            waiter.State = InboxWaiter.WaitState.Waiting;
            waiter.Prev = _tail;
            waiter.Next = null;
            if (_tail == null) _head = waiter;
            else _tail.Next = waiter;
            _tail = waiter;
            Interlocked.Increment(ref _outsideWaiters); // full fence: before the pump's look at the room below
        }
        if (cancellationToken.CanBeCanceled)
        {
            // Registered after joining: a token that has already fired runs the callback here, which takes the waiter
            // out again. The registration is stored under the lock, and only while still waiting (the pump may have
            // accepted the waiter meanwhile, and then nothing needs unregistering: see CancelRoomWait).
            CancellationTokenRegistration registration = cancellationToken.UnsafeRegister(s_cancelRoomWait, waiter);
            bool keep;
            lock (_waitGate)
            {
                keep = waiter.State == InboxWaiter.WaitState.Waiting;
                if (keep) waiter.WaitRegistration = registration;
            }
            if (!keep) registration.Unregister();
        }
        Pump(); // room may have appeared before we joined (the consumer saw no waiter then)
    }

    private static readonly Action<object?, CancellationToken> s_cancelRoomWait = static (w, token) =>
    {
        // The waiter is never pooled while it can be cancelled (InvokeOperation), so a late callback finds it accepted
        // (or cancelled), never reused.
        var waiter = (InboxWaiter)w!;
        waiter.WaitInbox!.CancelRoomWait(waiter, token);
    };

    private void CancelRoomWait(InboxWaiter waiter, CancellationToken token)
    {
        lock (_waitGate)
        {
            if (waiter.State != InboxWaiter.WaitState.Waiting) return; // accepted: it runs (and sees the token there)
            Unlink(waiter);
            Interlocked.Decrement(ref _outsideWaiters);
            waiter.State = InboxWaiter.WaitState.Canceled;
        }
        _owner.OutsideWaitEnded(accepted: false);
        waiter.OnWaitCanceled(token);
    }

    /// <summary>Under the lock: takes <paramref name="waiter"/> out of the FIFO (the caller adjusts <see cref="_outsideWaiters"/>).</summary>
    private void Unlink(InboxWaiter waiter)
    {
        if (waiter.Prev == null) _head = waiter.Next;
        else waiter.Prev.Next = waiter.Next;
        if (waiter.Next == null) _tail = waiter.Prev;
        else waiter.Next.Prev = waiter.Prev;
        waiter.Next = waiter.Prev = null;
    }

    /// <summary>Consumer: queues the pump on the thread pool unless it is queued already (the CPU never takes the waiter lock).</summary>
    private void QueuePump()
    {
        if (Interlocked.CompareExchange(ref _pumpQueued, 1, 0) == 0) ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
    }

    void IThreadPoolWorkItem.Execute()
    {
        // Full fence: reset before we look, so that room freed after our look queues us again.
        Interlocked.Exchange(ref _pumpQueued, 0);
        Pump();
    }

    /// <summary>
    /// Any thread but the consumer: moves waiters into the inbox, in FIFO order, while it has room, and completes the
    /// sequence waits that are done. Each accepted waiter leaves the outside-call fence only after the CPU has been
    /// told (its outside bit raised): the runtime's disposal, which waits for that fence, then counts it as accepted.
    /// </summary>
    internal void Pump()
    {
        while (true)
        {
            long start;
            lock (_waitGate)
            {
                InboxWaiter? waiter = _head;
                if (waiter == null) break;
                // Read the waiter before the enqueue publishes its message: once that runs, the call may complete and its
                // (pooled) operation be reused, with new owner fields. Its links and state may still be written after:
                // they are written only under this lock (a new incarnation joins under it too), never by the owner alone.
                // It stays the head until its message is in: a new call from its caller finds it and queues behind it.
                CancellationTokenRegistration registration = waiter.WaitRegistration;
                start = waiter.WaitStart;
                if (TryEnqueue(waiter.WaitFunc!, waiter.WaitArg1, waiter.WaitArg2) == 0) break;
                Unlink(waiter);
                waiter.State = InboxWaiter.WaitState.Accepted;
                Interlocked.Decrement(ref _outsideWaiters);
                // Unregister (never waits) releases the token's node; a callback already running finds it accepted.
                registration.Unregister();
            }
            _owner.OutsideWaitEnded(accepted: true);
            _owner.Runtime.Internals.Metrics?.RecordWait(Cpu.ExternalSource, Diagnostics.RuntimeMetrics.WaitKind.InboxRoom, start);
        }
        // The list is created under the lock; a pump queued for a new sequence waiter was queued after it joined.
        if (Volatile.Read(ref _sequenceWaiters) != null) CompleteSequenceWaiters();
    }

    // ------------------------------------------------------------------ sequence waits

    /// <summary>A wait for an inbox sequence from a thread that is not a CPU (<see cref="Cpu.WaitForAsync"/>).</summary>
    private sealed class SequenceWaiter(Inbox inbox, long sequence) : TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public readonly Inbox Inbox = inbox;
        public readonly long Sequence = sequence;
        public readonly long Start = Stopwatch.GetTimestamp();
        public CancellationTokenRegistration Registration;
    }

    /// <summary>Any thread that is not a CPU: a task that completes once <paramref name="sequence"/> has run and returned.</summary>
    internal Task WaitForSequenceAsync(long sequence, CancellationToken cancellationToken)
    {
        var waiter = new SequenceWaiter(this, sequence);
        // Registered before joining: a token that has already fired completes the task here, and it never joins. A
        // callback racing with the join may leave it listed, completed: the pump drops it when the sequence runs.
        CancellationTokenRegistration registration = cancellationToken.UnsafeRegister(static (w, token) =>
        {
            var sw = (SequenceWaiter)w!;
            sw.Inbox.RemoveSequenceWaiter(sw);
            sw.TrySetCanceled(token);
        }, waiter);
        lock (_waitGate)
        {
            if (waiter.Task.IsCompleted) return waiter.Task;
            waiter.Registration = registration; // read by the pump under the lock
            (_sequenceWaiters ??= []).Add(waiter);
            Interlocked.Increment(ref _outsideWaiters); // full fence: before our re-check of Executed below
        }
        CompleteSequenceWaiters(); // it may have run before we joined (the consumer saw no waiter then)
        return waiter.Task;
    }

    private void RemoveSequenceWaiter(SequenceWaiter waiter)
    {
        lock (_waitGate)
        {
            if (_sequenceWaiters != null && _sequenceWaiters.Remove(waiter)) Interlocked.Decrement(ref _outsideWaiters);
        }
    }

    private void CompleteSequenceWaiters()
    {
        List<SequenceWaiter>? done = null;
        lock (_waitGate)
        {
            List<SequenceWaiter>? waiters = _sequenceWaiters;
            if (waiters == null) return;
            long executed = Executed;
            for (int i = waiters.Count - 1; i >= 0; i--)
            {
                if (waiters[i].Sequence > executed) continue;
                (done ??= []).Add(waiters[i]);
                waiters.RemoveAt(i);
                Interlocked.Decrement(ref _outsideWaiters);
            }
        }
        if (done == null) return;
        Diagnostics.RuntimeMetrics? metrics = _owner.Runtime.Internals.Metrics;
        foreach (SequenceWaiter waiter in done)
        {
            waiter.Registration.Unregister();
            if (waiter.TrySetResult()) metrics?.RecordWait(Cpu.ExternalSource, Diagnostics.RuntimeMetrics.WaitKind.InboxSequence, waiter.Start);
        }
    }
}
