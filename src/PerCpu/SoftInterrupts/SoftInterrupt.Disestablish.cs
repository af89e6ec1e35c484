using System.Diagnostics;
using PerCpu.SoftInterrupts;

namespace PerCpu;

// Disestablish (softint_disestablish), with NetBSD's later fix: wait for a handler that is pending anywhere, not only
// for one that is active. Steps: refuse new schedules; run a barrier message on every CPU that unlinks the handle from
// that CPU's queue (after it, the CPU sees the handle as dead: late IPIs and stale entries are dropped); wait until the
// handler is active nowhere, asynchronous runs included; free the slot.
public sealed partial class SoftInterrupt
{
    /// <summary>The current or last disposal attempt; completed (always with success) when it ends. Swapped with CAS by disposers.</summary>
    private TaskCompletionSource? _disposal;

    /// <summary>The barrier of the current or last disposal attempt (diagnostics and tests: see <see cref="BarrierRemaining"/>).</summary>
    private Barrier? _barrier;

    /// <summary>CPUs that have not yet run the current disposal's barrier, or -1 before any barrier was sent.</summary>
    internal int BarrierRemaining => Volatile.Read(ref _barrier) is { } barrier ? Volatile.Read(ref barrier.Remaining) : -1;

    /// <summary>Set once a disposer has seen every CPU run the barrier and checks for a run in progress (diagnostics and tests).</summary>
    internal bool BarrierPassed => _barrierPassed;
    private volatile bool _barrierPassed;

    /// <summary>Published by a disposer (off-CPU or asynchronous) waiting for the handler to go inactive; completed by a CPU that clears a run of the dying handle.</summary>
    private TaskCompletionSource? _inactive;

    /// <summary>
    /// Disestablishes the soft interrupt. When this returns, the handler is not running on any CPU and never runs again,
    /// including on a CPU where it was pending but had not started; later <see cref="Schedule"/> and
    /// <see cref="ScheduleOn(Cpu)"/> calls throw <see cref="ObjectDisposedException"/>. Waits for a run in progress, an
    /// asynchronous one included; on a CPU it keeps processing that CPU's IPIs while it waits. Safe to call more than once.
    /// </summary>
    /// <exception cref="InvalidOperationException">
    /// Called from inside the handler itself, or on a CPU where its asynchronous run has not completed (it would wait for
    /// itself): dispose from elsewhere, or use <see cref="DisposeAsync"/> from other code on that CPU.
    /// </exception>
    /// <exception cref="TimeoutException">The handler stayed active for <see cref="CpuRuntimeOptions.WaitTimeout"/>; the soft interrupt refuses schedules, and a later Dispose tries again.</exception>
    /// <remarks>
    /// From a CPU of another runtime, which is an outside thread to this one, the disposal runs on the thread pool while
    /// that CPU blocks until it ends, as any synchronous wait blocks it (<see cref="DisposeAsync"/> does not block it).
    /// </remarks>
    public void Dispose()
    {
        if (OnForeignCpu())
        {
            // A CPU must not send to or wait on another runtime's queues from its own thread (Cpu.Send refuses it);
            // as any outside thread, the pool thread may. It has no synchronization context, so no step of the disposal
            // (Runtime.Dispose included) needs the blocked CPU to make progress.
            Task.Run(Dispose).GetAwaiter().GetResult();
            return;
        }
        Cpu? self = CallingCpu();
        CheckNotInside(self, synchronous: true);
        TaskCompletionSource? attempt;
        while ((attempt = BeginDisposal(out Task? other)) == null)
        {
            if (other == null) return; // already disposed
            WaitSync(self, other); // another thread is disposing: its outcome decides; look again
        }
        try
        {
            if (!DisestablishWithoutThreads())
            {
                Barrier? barrier = SendBarrier(self);
                if (barrier == null)
                {
                    Runtime.Dispose(); // the runtime is shutting down and refuses our messages: once it has stopped, nothing runs
                    UnlinkEverywhere();
                }
                else
                {
                    WaitSync(self, barrier);
                    _barrierPassed = true;
                    WaitInactiveSync(self);
                }
            }
            EndDisposal(attempt, success: true);
        }
        catch
        {
            EndDisposal(attempt, success: false);
            throw;
        }
    }

    /// <summary>
    /// Disestablishes the soft interrupt asynchronously; otherwise as <see cref="Dispose"/>. May be awaited on a CPU where
    /// the handler's asynchronous run is blocked (other code there, not the handler itself: that would wait for itself
    /// until <see cref="CpuRuntimeOptions.WaitTimeout"/>).
    /// </summary>
    /// <returns>A task that completes once the handler is inactive everywhere and never runs again.</returns>
    /// <exception cref="InvalidOperationException">Called from inside the handler's synchronous part.</exception>
    /// <remarks>From a CPU of another runtime the disposal runs on the thread pool; the caller resumes on its own CPU.</remarks>
    public ValueTask DisposeAsync()
    {
        if (OnForeignCpu()) return new ValueTask(Task.Run(() => DisposeCoreAsync(null))); // see Dispose
        Cpu? self = CallingCpu();
        CheckNotInside(self, synchronous: false);
        return new ValueTask(DisposeCoreAsync(self));
    }

    private async Task DisposeCoreAsync(Cpu? self)
    {
        TaskCompletionSource? attempt;
        while ((attempt = BeginDisposal(out Task? other)) == null)
        {
            if (other == null) return;
            await WithTimeout(other, "another thread's disposal of this soft interrupt").ConfigureAwait(true);
        }
        try
        {
            if (!DisestablishWithoutThreads())
            {
                Barrier? barrier = SendBarrier(self);
                if (barrier == null)
                {
                    await Runtime.DisposeAsync().ConfigureAwait(true);
                    UnlinkEverywhere();
                }
                else
                {
                    await WithTimeout(barrier.Done.Task, "every CPU to run the disposal barrier").ConfigureAwait(true);
                    _barrierPassed = true;
                    while (AnyActive())
                    {
                        TaskCompletionSource signal = PublishInactiveSignal();
                        if (!AnyActive()) break;
                        await WithTimeout(signal.Task, "the handler to finish its run").ConfigureAwait(true);
                    }
                }
            }
            EndDisposal(attempt, success: true);
        }
        catch
        {
            EndDisposal(attempt, success: false);
            throw;
        }
    }

    /// <summary>
    /// True on a CPU thread of another runtime. Checked before any state changes: such a thread may not send into this
    /// runtime (<see cref="Cpu.Send(Action{object?, long}, object?, long)"/> refuses a foreign CPU), so the disposal moves
    /// to the thread pool, where it is an ordinary outside thread.
    /// </summary>
    private bool OnForeignCpu() => Cpu.Current is { } cpu && cpu.Runtime != Table.Runtime;

    /// <summary>The calling CPU if it belongs to this runtime, else null (another runtime's CPU is an outside thread here).</summary>
    private Cpu? CallingCpu() => Cpu.Current is { } cpu && cpu.Runtime == Table.Runtime ? cpu : null;

    private void CheckNotInside(Cpu? self, bool synchronous)
    {
        if (self == null) return;
        SoftCpu soft = Table.Cpus[self.Id];
        if (soft.Running == this)
            throw new InvalidOperationException(
                $"A soft interrupt cannot dispose itself from inside its own handler (on CPU {self.Id}): disposal waits until the handler has returned. " +
                "Dispose it from other code: a task (Cpu.Post), another CPU, or a thread that is not a CPU.");
        if (synchronous && soft.IsActive(this))
            throw new InvalidOperationException(
                $"This soft interrupt's asynchronous handler has not completed on CPU {self.Id}, and its continuations run on CPU {self.Id}: " +
                "a synchronous Dispose here would wait for itself. Use DisposeAsync (not from inside the handler), or dispose from another thread.");
    }

    /// <summary>
    /// Claims the disposal (returns the new attempt), or returns null with <paramref name="other"/> = the attempt in
    /// progress to wait for, or null with <paramref name="other"/> = null once the handle is disposed.
    /// </summary>
    private TaskCompletionSource? BeginDisposal(out Task? other)
    {
        while (true)
        {
            other = null;
            TaskCompletionSource? current = Volatile.Read(ref _disposal);
            if (Volatile.Read(ref _lifecycle) == Disposed) return null;
            if (current != null && !current.Task.IsCompleted)
            {
                other = current.Task;
                return null;
            }
            var attempt = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (Interlocked.CompareExchange(ref _disposal, attempt, current) != current) continue;
            if (Volatile.Read(ref _lifecycle) == Disposed)
            {
                attempt.TrySetResult(); // a previous attempt finished in between
                return null;
            }
            // Full fence (Interlocked): the handle is dead before any barrier message is sent, so every CPU that runs
            // the barrier sees it dead from then on.
            Interlocked.Exchange(ref _lifecycle, Disposing);
            return attempt;
        }
    }

    private void EndDisposal(TaskCompletionSource attempt, bool success)
    {
        if (success)
        {
            Table.Free(this);
            Volatile.Write(ref _lifecycle, Disposed);
        }
        else
        {
            Volatile.Write(ref _lifecycle, Abandoned); // still refuses schedules; a later Dispose tries again
        }
        attempt.TrySetResult();
    }

    /// <summary>
    /// For runtimes without CPU threads: a manual runtime (the caller steps every CPU, so it runs the barrier itself) or
    /// a stopped one (nothing can run). Returns false if the runtime has threads that may still run the handler.
    /// </summary>
    private bool DisestablishWithoutThreads()
    {
        CpuRuntime.Shared shared = Table.Runtime.Internals;
        if (shared.Stopped)
        {
            UnlinkEverywhere();
            return true;
        }
        if (!shared.Manual) return false;
        UnlinkEverywhere();
        long start = Stopwatch.GetTimestamp();
        while (AnyActive())
        {
            // An asynchronous run is blocked: step the CPUs where it is until it completes.
            foreach (SoftCpu soft in Table.Cpus)
            {
                if (!soft.IsActive(this)) continue;
                if (soft.Cpu == Cpu.Current)
                    throw new InvalidOperationException(
                        $"In a manual runtime, {this} is blocked on CPU {soft.Cpu.Id}, which is the one calling: dispose it from outside RunOnce.");
                soft.Cpu.RunOnce();
            }
            if (Stopwatch.GetElapsedTime(start) > shared.Options.WaitTimeout)
                throw ActiveTimeout();
        }
        return true;
    }

    private void UnlinkEverywhere()
    {
        foreach (SoftCpu soft in Table.Cpus) soft.Unlink(this);
    }

    /// <summary>One disposal's barrier: a message to every CPU, counted down as each runs it.</summary>
    private sealed class Barrier(SoftInterrupt handle, int cpus)
    {
        internal readonly SoftInterrupt Handle = handle;
        internal readonly TaskCompletionSource Done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>CPUs that have not run it yet; decremented with atomics by each CPU, read by the disposer.</summary>
        internal int Remaining = cpus;
    }

    private readonly struct BarrierDone(Barrier barrier) : Cpu.IWaitCondition
    {
        public bool IsMet => Volatile.Read(ref barrier.Remaining) == 0;
        public long Lag => Volatile.Read(ref barrier.Remaining);
    }

    private static readonly Action<object?, long> s_barrier = static (b, _) =>
    {
        var barrier = (Barrier)b!;
        // On this CPU, from now on the handle is dead (its lifecycle was written before this message was sent).
        barrier.Handle.Table.Cpus[Cpu.Current!.Id].Unlink(barrier.Handle);
        // Interlocked: the unlink (and whether the handler is still active here) is visible to whoever sees the count reach 0.
        if (Interlocked.Decrement(ref barrier.Remaining) == 0) barrier.Done.TrySetResult();
    };

    /// <summary>
    /// Sends the barrier to every CPU (to the calling CPU it runs at once), starting after the caller so that low ids are
    /// not always first. Returns null if the runtime refused an outside thread's message because it is shutting down.
    /// </summary>
    private Barrier? SendBarrier(Cpu? self)
    {
        SoftCpu[] cpus = Table.Cpus;
        var barrier = new Barrier(this, cpus.Length);
        Volatile.Write(ref _barrier, barrier);
        int start = self?.Id ?? 0;
        try
        {
            for (int i = 0; i < cpus.Length; i++)
            {
                int id = start + i;
                if (id >= cpus.Length) id -= cpus.Length;
                cpus[id].Cpu.Send(s_barrier, barrier);
            }
        }
        catch (ObjectDisposedException) when (self == null)
        {
            return null;
        }
        return barrier;
    }

    /// <summary>Any thread: true while the handler runs, or is blocked, on some CPU.</summary>
    private bool AnyActive()
    {
        foreach (SoftCpu soft in Table.Cpus)
            if (soft.IsActive(this)) return true;
        return false;
    }

    /// <summary>Handler-side half of <see cref="PublishInactiveSignal"/>: a CPU cleared a run of this dying handle.</summary>
    internal void NotifyInactive()
    {
        // Full fence: our clear of Active is visible before we read the signal; pairs with the disposer's fence between
        // publishing the signal and re-checking Active. Either it sees the clear or we see its signal.
        Interlocked.MemoryBarrier();
        Volatile.Read(ref _inactive)?.TrySetResult();
    }

    private TaskCompletionSource PublishInactiveSignal()
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _inactive, signal);
        Interlocked.MemoryBarrier(); // see NotifyInactive
        return signal;
    }

    private readonly struct Inactive(SoftInterrupt handle) : Cpu.IWaitCondition
    {
        public bool IsMet => !handle.AnyActive();
        public long Lag
        {
            get
            {
                long n = 0;
                foreach (SoftCpu soft in handle.Table.Cpus)
                    if (soft.IsActive(handle)) n++;
                return n;
            }
        }
    }

    private readonly struct TaskDone(Task task) : Cpu.IWaitCondition
    {
        public bool IsMet => task.IsCompleted;
        public long Lag => 1;
    }

    /// <summary>Waits for another disposal attempt: on a CPU, draining its IPIs; elsewhere, blocking.</summary>
    private void WaitSync(Cpu? self, Task task)
    {
        if (self != null)
        {
            var done = new TaskDone(task);
            self.WaitUntil(ref done, self, "another disposal of a soft interrupt");
        }
        else if (!task.Wait(Table.Runtime.Internals.Options.WaitTimeout))
        {
            throw new TimeoutException(
                $"Another thread's disposal of {this} has not finished after {Table.Runtime.Internals.Options.WaitTimeout.TotalSeconds:F1} s: its handler is probably still running.");
        }
    }

    private void WaitSync(Cpu? self, Barrier barrier)
    {
        if (self != null)
        {
            var done = new BarrierDone(barrier);
            self.WaitUntil(ref done, self, $"every CPU to run the disposal barrier of {this}");
        }
        else if (!barrier.Done.Task.Wait(Table.Runtime.Internals.Options.WaitTimeout))
            throw new TimeoutException(
                $"{barrier.Remaining} CPU(s) have not run the disposal barrier of {this} after {Table.Runtime.Internals.Options.WaitTimeout.TotalSeconds:F1} s: " +
                "they are probably stuck in a long-running function.");
    }

    private void WaitInactiveSync(Cpu? self)
    {
        if (self != null)
        {
            var inactive = new Inactive(this);
            self.WaitUntil(ref inactive, self, $"{this} to finish its run");
            return;
        }
        long start = Stopwatch.GetTimestamp();
        TimeSpan timeout = Table.Runtime.Internals.Options.WaitTimeout;
        while (AnyActive())
        {
            TaskCompletionSource signal = PublishInactiveSignal();
            if (!AnyActive()) break;
            TimeSpan left = timeout - Stopwatch.GetElapsedTime(start);
            if (left <= TimeSpan.Zero || !signal.Task.Wait(left)) throw ActiveTimeout();
        }
    }

    private async Task WithTimeout(Task task, string what)
    {
        TimeSpan timeout = Table.Runtime.Internals.Options.WaitTimeout;
        try
        {
            await task.WaitAsync(timeout).ConfigureAwait(true);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(
                $"Disposing {this} waited {timeout.TotalSeconds:F1} s for {what}. If DisposeAsync is awaited from inside the handler itself, " +
                "it waits for itself: dispose from other code. Otherwise a handler or function is stuck: move long work to tasks, or raise CpuRuntimeOptions.WaitTimeout.");
        }
    }

    private TimeoutException ActiveTimeout() => new(
        $"Disposing {this}: its handler has stayed active for {Table.Runtime.Internals.Options.WaitTimeout.TotalSeconds:F1} s (CpuRuntimeOptions.WaitTimeout). " +
        "An asynchronous handler that never completes, or one that waits for its own disposal, blocks disposal. The soft interrupt refuses schedules; dispose it again once the handler can finish.");
}
