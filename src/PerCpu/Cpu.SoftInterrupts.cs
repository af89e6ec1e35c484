using System.Diagnostics;
using System.Numerics;
using PerCpu.Diagnostics;
using PerCpu.Dispatch;
using PerCpu.SoftInterrupts;

namespace PerCpu;

// Soft interrupts on this CPU (NetBSD kern_softint.c): queueing (softint_schedule), the dispatch step of the loop
// (softint_execute / softint_picklwp), blocked asynchronous handlers (softint_block), and the shutdown counts.
public sealed partial class Cpu
{
    /// <summary>Handlers run per dispatch pass at most, so a handler that keeps scheduling itself cannot starve the tasks.</summary>
    private const int SoftInterruptBatch = 64;

    /// <summary>
    /// This CPU's soft interrupt state, attached by the first handler queued here. Owner only: other threads reach the
    /// state through the runtime's table.
    /// </summary>
    private SoftCpu? _soft;

    /// <summary>
    /// Owner only: queues <paramref name="handle"/> on this CPU (seed: <c>softint_schedule</c>). Already pending: nothing
    /// to do. A plain flag test and a link at the tail of the level's FIFO: no atomics, no allocation.
    /// </summary>
    internal void ScheduleSoftInterrupt(SoftInterrupt handle)
    {
        Debug.Assert(t_current == this);
        SoftCpu soft = _soft ??= handle.Table.Cpus[Id];
        ref SoftHand hand = ref soft.Hands[handle.Slot];
        if ((hand.Flags & SoftHand.Pending) != 0) return;
        hand.Flags |= SoftHand.Pending;
        hand.Handle = handle;
        soft.Enqueue(soft.Levels[(int)handle.Level], handle.Slot);
        soft.Accepted++;
    }

    /// <summary>
    /// Runs pending soft interrupts, highest level first and FIFO within a level (seed: <c>softint_picklwp</c> then
    /// <c>softint_execute</c>), at most <see cref="SoftInterruptBatch"/> of them. Between handlers it drains the IPIs
    /// (hard interrupts preempt soft ones), so that no IPI waits behind a long list of handlers; the level is chosen
    /// again after each, since those IPIs may have scheduled a higher one. Returns true if a handler ran.
    /// </summary>
    private bool RunSoftInterrupts()
    {
        SoftCpu? soft = _soft;
        if (soft == null || soft.RunnableLevels == 0) return false;
        bool ran = false;
        int budget = SoftInterruptBatch;
        int runnable;
        while ((runnable = soft.RunnableLevels) != 0)
        {
            SoftLevelQueue queue = soft.Levels[BitOperations.Log2((uint)runnable)];
            int slot = soft.Dequeue(queue);
            ref SoftHand hand = ref soft.Hands[slot];
            SoftInterrupt handle = hand.Handle!;
            // A dequeued handler is never active: a level runs one handler at a time and its blocked one holds it back.
            Debug.Assert((hand.Flags & (SoftHand.Pending | SoftHand.Active)) == SoftHand.Pending);
            if (handle.IsDying)
            {
                // Disestablished since it was queued: drop it (its barrier may not have reached this CPU yet).
                hand.Flags = 0;
                hand.Handle = null;
                Volatile.Write(ref soft.Finished, soft.Finished + 1);
                continue;
            }
            // PENDING -> ACTIVE (seed: sh_flags ^= PENDING|ACTIVE): a schedule from now on queues it again, so a handler
            // scheduled while it runs runs once more afterwards. Volatile: a disposer reads Active.
            Volatile.Write(ref hand.Flags, SoftHand.Active);
            RunSoftInterrupt(soft, queue, slot, handle);
            ran = true;
            ProcessIpis();
            if (--budget == 0 || IsInterlocked()) break;
        }
        return ran;
    }

    private void RunSoftInterrupt(SoftCpu soft, SoftLevelQueue queue, int slot, SoftInterrupt handle)
    {
        soft.Running = handle;
        queue.Count++;
        Trace?.Record(TraceEvent.SoftintEntry, Id, Id, handle.Handler, (long)queue.Level);
        bool timing = handle.Table.Timing;
        long start = timing ? Stopwatch.GetTimestamp() : 0;
        bool blocked = false;
        try
        {
            Action<object?>? sync = handle.SyncHandler;
            if (sync != null) sync(handle.State);
            else blocked = StartAsyncSoftInterrupt(soft, queue, slot, handle);
        }
        catch (Exception e)
        {
            queue.Errors++;
            ReportException(e, ExternalSource);
        }
        if (timing)
        {
            long ticks = Stopwatch.GetTimestamp() - start;
            queue.TimeTicks += ticks;
            _shared.Metrics?.RecordSoftInterrupt(Id, queue.Level, ticks);
        }
        Trace?.Record(TraceEvent.SoftintExit, Id, Id, handle.Handler, (long)queue.Level);
        soft.Running = null;
        if (!blocked) FinishSoftInterrupt(soft, slot, handle);
    }

    /// <summary>
    /// Calls an asynchronous handler. If its task has not completed, the level blocks (seed: <c>softint_block</c>: "no
    /// further soft interrupts at that level … until the soft interrupt handler has ceased execution"); its
    /// continuations resume here through this CPU's context, and so does the completion. Returns true if it blocked.
    /// </summary>
    private static bool StartAsyncSoftInterrupt(SoftCpu soft, SoftLevelQueue queue, int slot, SoftInterrupt handle)
    {
        ValueTask task = handle.AsyncHandler!(handle.State);
        if (task.IsCompleted)
        {
            task.GetAwaiter().GetResult(); // consume it (a pooled source needs that); an exception goes to the caller's catch
            return false;
        }
        queue.Blocked = handle;
        queue.BlockedSlot = slot;
        queue.BlockedAwaiter = task.ConfigureAwait(true).GetAwaiter();
        soft.BlockedLevels |= queue.Bit;
        queue.Blocks++;
        queue.BlockedAwaiter.UnsafeOnCompleted(queue.OnBlockedCompleted);
        return true;
    }

    /// <summary>An asynchronous handler's task completed: unblock its level. Runs on this CPU (it comes home if an awaiter ignored the context).</summary>
    internal void CompleteBlockedSoftInterrupt(SoftLevelQueue queue)
    {
        if (t_current != this && !_shared.Stopped)
        {
            EnqueueTask(new TaskItem(queue.OnBlockedCompleted, null));
            return;
        }
        SoftInterrupt? handle = queue.Blocked;
        Debug.Assert(handle != null);
        if (handle == null) return;
        var awaiter = queue.BlockedAwaiter;
        queue.BlockedAwaiter = default;
        queue.Blocked = null;
        try
        {
            awaiter.GetResult();
        }
        catch (Exception e)
        {
            queue.Errors++;
            ReportException(e, ExternalSource);
        }
        SoftCpu soft = queue.Owner;
        soft.BlockedLevels &= ~queue.Bit;
        FinishSoftInterrupt(soft, queue.BlockedSlot, handle);
    }

    /// <summary>A run ended: ACTIVE -> idle (or pending, if it was scheduled again meanwhile), and the shutdown count.</summary>
    private static void FinishSoftInterrupt(SoftCpu soft, int slot, SoftInterrupt handle)
    {
        ref SoftHand hand = ref soft.Hands[slot];
        // Release: the handler's effects are visible to a disposer that sees it inactive.
        Volatile.Write(ref hand.Flags, hand.Flags & ~SoftHand.Active);
        // Release: counted after the work it did (messages, tasks, schedules) was counted as accepted.
        Volatile.Write(ref soft.Finished, soft.Finished + 1);
        if (handle.IsDying)
        {
            if ((hand.Flags & SoftHand.Pending) == 0) hand.Handle = null;
            handle.NotifyInactive();
        }
    }

    /// <summary>True if a soft interrupt is ready to run on this CPU (pending at a level that is not blocked). Owner only.</summary>
    private bool HasSoftInterruptWork() => _soft is { } soft && soft.RunnableLevels != 0;

    /// <summary>This CPU's soft interrupt state for other threads (null until the first soft interrupt is established).</summary>
    private SoftCpu? SharedSoftCpu => Runtime.SoftInterruptTableOrNull?.Cpus[Id];

    /// <summary>Soft interrupts queued on this CPU (monotonic), for the shutdown quiescence check.</summary>
    private long AcceptedSoftInterruptWork() => SharedSoftCpu is { } soft ? Volatile.Read(ref soft.Accepted) : 0;

    /// <summary>Queued soft interrupts that finished on this CPU (monotonic; a blocked asynchronous run only when it completes).</summary>
    private long FinishedSoftInterruptWork() => SharedSoftCpu is { } soft ? Volatile.Read(ref soft.Finished) : 0;

    /// <summary>This CPU's soft interrupt counts at <paramref name="level"/> since it started, ignoring resets (for the meter's monotonic counters).</summary>
    internal SoftInterruptStatistics GetSoftInterruptTotals(SoftLevel level) => SharedSoftCpu is { } soft ? soft.Levels[(int)level].Snapshot() : default;

    /// <summary>
    /// A snapshot of this CPU's soft interrupt statistics at <paramref name="level"/> (the seed's per-CPU, per-level
    /// event counters) since the last <see cref="CpuRuntime.ResetStatistics"/>.
    /// </summary>
    /// <param name="level">The level.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="level"/> is not a defined <see cref="SoftLevel"/>.</exception>
    public SoftInterruptStatistics GetSoftInterruptStatistics(SoftLevel level)
    {
        CpuRuntime.CheckSoftLevel(level);
        SoftCpu? soft = SharedSoftCpu;
        if (soft == null) return default;
        return soft.Levels[(int)level].Snapshot() - Volatile.Read(ref soft.Baselines)[(int)level];
    }
}
