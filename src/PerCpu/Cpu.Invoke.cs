using System.Runtime.CompilerServices;
using PerCpu.Ipi;

namespace PerCpu;

// Calls with results (Seastar's submit_to): a pooled IValueTaskSource per call, zero allocation in steady state.
public sealed partial class Cpu
{
    // Overload resolution (why the priorities): an async lambda converts to Func<ValueTask<T>>, Func<Task<T>> and
    // Func<T> alike, which C# cannot order (CS0121); the ValueTask forms win by priority, so an async lambda binds to
    // the form that awaits it and allocates least. A method group returning Task<T> or Task cannot convert to the
    // ValueTask forms, and among the rest C# prefers Func<Task<T>> / Func<Task> over Func<T> (more specific): the
    // task is awaited on this CPU and its exception reaches the caller, instead of a ValueTask<Task<T>> that hides it.

    /// <summary>
    /// Runs <paramref name="func"/> on this CPU and returns its result (Seastar's <c>submit_to</c>). Awaited on a CPU,
    /// the result comes back through the reverse IPI ring and the caller resumes on its own CPU; awaited elsewhere, it
    /// resumes on the thread pool. An exception thrown by <paramref name="func"/> is rethrown to the awaiter. If
    /// <paramref name="cancellationToken"/> fires before the function starts, the function does not run and the awaiter
    /// sees <see cref="OperationCanceledException"/>.
    /// <para>
    /// From any thread. From a thread that is not a CPU the call goes through this CPU's bounded inbox; if the inbox is
    /// full (or other calls already wait for room), the call returns a pending task at once and is accepted, after the
    /// calls waiting before it, when room appears (as <c>Channel.Writer.WriteAsync</c> waits), or is cancelled, never
    /// to run, if the token fires first; nothing else bounds that wait. One thread's calls run in the order it made
    /// them; a <see cref="Send(Action{object?, long}, object?, long)"/> that finds room may overtake calls that wait.
    /// From a CPU of this runtime the call goes through that CPU's ring to this one, which never refuses it.
    /// </para>
    /// </summary>
    /// <typeparam name="T">The result type.</typeparam>
    /// <param name="func">The function; a static lambda allocates nothing.</param>
    /// <param name="cancellationToken">Cancels the call if it fires before the function starts.</param>
    /// <returns>A <see cref="ValueTask{TResult}"/> to await exactly once.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="func"/> is null.</exception>
    /// <exception cref="ObjectDisposedException">The runtime is disposed (from a thread that is not one of its CPUs).</exception>
    /// <exception cref="InvalidOperationException">Called on a CPU of another runtime (a CPU must never wait on a foreign runtime's queue).</exception>
    public ValueTask<T> InvokeAsync<T>(Func<T> func, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return Start<VoidResult, T>(func, InvokeKind.Func, false, default, cancellationToken);
    }

    /// <summary>
    /// Runs the asynchronous <paramref name="func"/> on this CPU (its awaits resume on this CPU) and returns its result
    /// once it completes. Otherwise as <see cref="InvokeAsync{T}(Func{T}, CancellationToken)"/>. An async lambda binds here.
    /// </summary>
    /// <inheritdoc cref="InvokeAsync{T}(Func{T}, CancellationToken)" path="/typeparam|/param|/returns|/exception"/>
    [OverloadResolutionPriority(1)]
    public ValueTask<T> InvokeAsync<T>(Func<ValueTask<T>> func, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return Start<VoidResult, T>(func, InvokeKind.AsyncFunc, false, default, cancellationToken);
    }

    /// <summary>
    /// Runs the <see cref="Task{TResult}"/>-returning <paramref name="func"/> on this CPU (its awaits resume on this CPU)
    /// and returns its result once the task completes; its exception reaches the awaiter. A method group such as
    /// <c>InvokeAsync(LoadAsync)</c> binds here. Otherwise as <see cref="InvokeAsync{T}(Func{T}, CancellationToken)"/>.
    /// </summary>
    /// <inheritdoc cref="InvokeAsync{T}(Func{T}, CancellationToken)" path="/typeparam|/param|/returns|/exception"/>
    public ValueTask<T> InvokeAsync<T>(Func<Task<T>> func, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return Start<VoidResult, T>(func, InvokeKind.TaskFunc, false, default, cancellationToken);
    }

    /// <summary>Runs <paramref name="action"/> on this CPU; completes when it has returned. Otherwise as <see cref="InvokeAsync{T}(Func{T}, CancellationToken)"/>.</summary>
    /// <param name="action">The work; a static lambda allocates nothing.</param>
    /// <param name="cancellationToken">Cancels the call if it fires before the action starts.</param>
    /// <returns>A <see cref="ValueTask"/> to await exactly once.</returns>
    /// <inheritdoc cref="InvokeAsync{T}(Func{T}, CancellationToken)" path="/exception"/>
    public ValueTask InvokeAsync(Action action, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(action);
        return StartVoid<VoidResult>(action, InvokeKind.Action, false, default, cancellationToken);
    }

    /// <summary>Runs the asynchronous <paramref name="func"/> on this CPU; completes when it has. An async lambda without a result binds here. Otherwise as <see cref="InvokeAsync{T}(Func{T}, CancellationToken)"/>.</summary>
    /// <param name="func">The asynchronous work.</param>
    /// <param name="cancellationToken">Cancels the call if it fires before the function starts.</param>
    /// <returns>A <see cref="ValueTask"/> to await exactly once.</returns>
    /// <inheritdoc cref="InvokeAsync{T}(Func{T}, CancellationToken)" path="/exception"/>
    [OverloadResolutionPriority(1)]
    public ValueTask InvokeAsync(Func<ValueTask> func, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return StartVoid<VoidResult>(func, InvokeKind.AsyncAction, false, default, cancellationToken);
    }

    /// <summary>Runs the <see cref="Task"/>-returning <paramref name="func"/> on this CPU; completes when its task has, with its exception. Otherwise as <see cref="InvokeAsync{T}(Func{T}, CancellationToken)"/>.</summary>
    /// <param name="func">The asynchronous work.</param>
    /// <param name="cancellationToken">Cancels the call if it fires before the function starts.</param>
    /// <returns>A <see cref="ValueTask"/> to await exactly once.</returns>
    /// <inheritdoc cref="InvokeAsync{T}(Func{T}, CancellationToken)" path="/exception"/>
    public ValueTask InvokeAsync(Func<Task> func, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return StartVoid<VoidResult>(func, InvokeKind.TaskAction, false, default, cancellationToken);
    }

    // ---- state-passing forms: the state travels in the pooled operation, so a static lambda needs no closure ----

    /// <summary>
    /// Runs <paramref name="func"/>(<paramref name="state"/>) on this CPU and returns its result. With a <c>static</c>
    /// lambda nothing is allocated, whatever <typeparamref name="TState"/> is (a value type is not boxed). Otherwise as
    /// <see cref="InvokeAsync{T}(Func{T}, CancellationToken)"/>.
    /// </summary>
    /// <typeparam name="TState">The type of the state.</typeparam>
    /// <typeparam name="T">The result type.</typeparam>
    /// <param name="func">The function; use a <c>static</c> lambda.</param>
    /// <param name="state">Passed to <paramref name="func"/>.</param>
    /// <param name="cancellationToken">Cancels the call if it fires before the function starts.</param>
    /// <returns>A <see cref="ValueTask{TResult}"/> to await exactly once.</returns>
    /// <inheritdoc cref="InvokeAsync{T}(Func{T}, CancellationToken)" path="/exception"/>
    public ValueTask<T> InvokeAsync<TState, T>(Func<TState, T> func, TState state, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return Start<TState, T>(func, InvokeKind.Func, true, state, cancellationToken);
    }

    /// <summary>State-passing form of <see cref="InvokeAsync{T}(Func{ValueTask{T}}, CancellationToken)"/>.</summary>
    /// <inheritdoc cref="InvokeAsync{TState, T}(Func{TState, T}, TState, CancellationToken)" path="/typeparam|/param|/returns|/exception"/>
    [OverloadResolutionPriority(1)]
    public ValueTask<T> InvokeAsync<TState, T>(Func<TState, ValueTask<T>> func, TState state, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return Start<TState, T>(func, InvokeKind.AsyncFunc, true, state, cancellationToken);
    }

    /// <summary>State-passing form of <see cref="InvokeAsync{T}(Func{Task{T}}, CancellationToken)"/>.</summary>
    /// <inheritdoc cref="InvokeAsync{TState, T}(Func{TState, T}, TState, CancellationToken)" path="/typeparam|/param|/returns|/exception"/>
    public ValueTask<T> InvokeAsync<TState, T>(Func<TState, Task<T>> func, TState state, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return Start<TState, T>(func, InvokeKind.TaskFunc, true, state, cancellationToken);
    }

    /// <summary>State-passing form of <see cref="InvokeAsync(Action, CancellationToken)"/>.</summary>
    /// <typeparam name="TState">The type of the state.</typeparam>
    /// <param name="action">The work; use a <c>static</c> lambda.</param>
    /// <param name="state">Passed to <paramref name="action"/>.</param>
    /// <param name="cancellationToken">Cancels the call if it fires before the action starts.</param>
    /// <returns>A <see cref="ValueTask"/> to await exactly once.</returns>
    /// <inheritdoc cref="InvokeAsync{T}(Func{T}, CancellationToken)" path="/exception"/>
    public ValueTask InvokeAsync<TState>(Action<TState> action, TState state, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(action);
        return StartVoid<TState>(action, InvokeKind.Action, true, state, cancellationToken);
    }

    /// <summary>State-passing form of <see cref="InvokeAsync(Func{ValueTask}, CancellationToken)"/>.</summary>
    /// <typeparam name="TState">The type of the state.</typeparam>
    /// <param name="func">The asynchronous work.</param>
    /// <param name="state">Passed to <paramref name="func"/>.</param>
    /// <param name="cancellationToken">Cancels the call if it fires before the function starts.</param>
    /// <returns>A <see cref="ValueTask"/> to await exactly once.</returns>
    /// <inheritdoc cref="InvokeAsync{T}(Func{T}, CancellationToken)" path="/exception"/>
    [OverloadResolutionPriority(1)]
    public ValueTask InvokeAsync<TState>(Func<TState, ValueTask> func, TState state, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return StartVoid<TState>(func, InvokeKind.AsyncAction, true, state, cancellationToken);
    }

    /// <summary>State-passing form of <see cref="InvokeAsync(Func{Task}, CancellationToken)"/>.</summary>
    /// <typeparam name="TState">The type of the state.</typeparam>
    /// <param name="func">The asynchronous work.</param>
    /// <param name="state">Passed to <paramref name="func"/>.</param>
    /// <param name="cancellationToken">Cancels the call if it fires before the function starts.</param>
    /// <returns>A <see cref="ValueTask"/> to await exactly once.</returns>
    /// <inheritdoc cref="InvokeAsync{T}(Func{T}, CancellationToken)" path="/exception"/>
    public ValueTask InvokeAsync<TState>(Func<TState, Task> func, TState state, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return StartVoid<TState>(func, InvokeKind.TaskAction, true, state, cancellationToken);
    }

    private ValueTask<T> Start<TState, T>(object func, InvokeKind kind, bool withState, TState? state, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<T>(cancellationToken);
        var op = InvokeOperation<TState, T>.Start(this, func, kind, withState, state, cancellationToken, out short version);
        return new ValueTask<T>(op, version);
    }

    private ValueTask StartVoid<TState>(object func, InvokeKind kind, bool withState, TState? state, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
        var op = InvokeOperation<TState, VoidResult>.Start(this, func, kind, withState, state, cancellationToken, out short version);
        return new ValueTask(op, version);
    }

    /// <summary>
    /// An <see cref="InvokeAsync{T}(Func{T}, CancellationToken)"/> from a thread that is not a CPU: into the inbox if it
    /// has room (as a normal send), else a waiter in the inbox's FIFO (<see cref="Inbox.AddRoomWaiter"/>), without
    /// blocking. The waiter keeps the outside-call fence until it is accepted or cancelled, so the runtime's disposal
    /// waits for it as for a blocked sender (phase 1 of <see cref="CpuRuntime.DisposeAsync"/>): nothing accepted is lost,
    /// and a call cancelled before it was accepted never runs.
    /// </summary>
    internal void SendOrWaitFromOutside(InboxWaiter waiter, CancellationToken cancellationToken)
    {
        CpuRuntime.Shared shared = _shared;
        shared.EnterOutsideCall(); // throws ObjectDisposedException once disposal has begun
        Diagnostics.CpuCounters external = shared.External;
        Interlocked.Increment(ref external.Sent);
        if (!Inbox.HasRoomWaiters && Inbox.TryEnqueue(waiter.WaitFunc!, waiter.WaitArg1, waiter.WaitArg2) != 0)
        {
            try
            {
                // Interlocked.Or is a full fence: the slot is visible before we read the state in TryWake.
                RaiseIpiBit(_externalBit);
                if (TryWake()) Interlocked.Increment(ref external.WakesSent);
                else Interlocked.Increment(ref external.Avoided);
            }
            finally
            {
                shared.ExitOutsideCall();
            }
            return;
        }
        // Full: the inbox may be full of passive entries, which wake nobody; wake the CPU so that it makes room.
        Interlocked.Increment(ref external.FifoFull);
        if (RaiseExternalBitAndWake()) Interlocked.Increment(ref external.WakesSent);
        Inbox.AddRoomWaiter(waiter, cancellationToken);
    }

    /// <summary>
    /// The inbox's pump (<paramref name="accepted"/>) or a cancellation ended an outside call's wait for room. An
    /// accepted call is announced to this CPU (the outside bit, a full fence after the enqueue) before it leaves the
    /// outside-call fence, so that disposal, once it sees no call in flight, counts it as accepted work.
    /// </summary>
    internal void OutsideWaitEnded(bool accepted)
    {
        CpuRuntime.Shared shared = _shared;
        if (accepted)
        {
            if (RaiseExternalBitAndWake()) Interlocked.Increment(ref shared.External.WakesSent);
            else Interlocked.Increment(ref shared.External.Avoided);
        }
        shared.ExitOutsideCall();
    }

    /// <summary>An async function given to InvokeAsync is in flight on this CPU (owner only; release: see <see cref="AcceptedWork"/>).</summary>
    internal void CountAsyncStarted() => Volatile.Write(ref Own.AsyncStarted, Own.AsyncStarted + 1);

    /// <summary>That function has completed and its outcome is on its way (owner only; release, after the reply was accepted).</summary>
    internal void CountAsyncFinished() => Volatile.Write(ref Own.AsyncFinished, Own.AsyncFinished + 1);
}
