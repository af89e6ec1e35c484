using PerCpu.Ipi;

namespace PerCpu;

// Calls with results (Seastar's submit_to): a pooled IValueTaskSource per call, zero allocation in steady state.
public sealed partial class Cpu
{
    /// <summary>
    /// Runs <paramref name="func"/> on this CPU and returns its result. Awaited on a CPU, the result comes back through
    /// the reverse IPI ring and the caller resumes on its own CPU; awaited elsewhere, it resumes on the thread pool. An
    /// exception thrown by <paramref name="func"/> is rethrown to the awaiter. If <paramref name="cancellationToken"/>
    /// fires before the function starts, the function does not run and the awaiter sees <see cref="OperationCanceledException"/>.
    /// </summary>
    /// <typeparam name="T">The result type.</typeparam>
    /// <param name="func">The function; a static lambda allocates nothing.</param>
    /// <param name="cancellationToken">Cancels the call if it fires before the function starts.</param>
    /// <returns>A <see cref="ValueTask{TResult}"/> to await exactly once.</returns>
    public ValueTask<T> InvokeAsync<T>(Func<T> func, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return Start<T>(func, InvokeOperation<T>.FuncKind, cancellationToken);
    }

    /// <summary>
    /// Runs the asynchronous <paramref name="func"/> on this CPU (its awaits resume on this CPU) and returns its result
    /// once it completes. Otherwise as <see cref="InvokeAsync{T}(Func{T}, CancellationToken)"/>.
    /// </summary>
    /// <typeparam name="T">The result type.</typeparam>
    /// <param name="func">The asynchronous function.</param>
    /// <param name="cancellationToken">Cancels the call if it fires before the function starts.</param>
    /// <returns>A <see cref="ValueTask{TResult}"/> to await exactly once.</returns>
    public ValueTask<T> InvokeAsync<T>(Func<ValueTask<T>> func, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return Start<T>(func, InvokeOperation<T>.AsyncFuncKind, cancellationToken);
    }

    /// <summary>Runs <paramref name="action"/> on this CPU; completes when it has returned. Otherwise as <see cref="InvokeAsync{T}(Func{T}, CancellationToken)"/>.</summary>
    /// <param name="action">The work; a static lambda allocates nothing.</param>
    /// <param name="cancellationToken">Cancels the call if it fires before the action starts.</param>
    /// <returns>A <see cref="ValueTask"/> to await exactly once.</returns>
    public ValueTask InvokeAsync(Action action, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(action);
        return StartVoid(action, InvokeOperation<VoidResult>.ActionKind, cancellationToken);
    }

    /// <summary>Runs the asynchronous <paramref name="func"/> on this CPU; completes when it has. Otherwise as <see cref="InvokeAsync{T}(Func{T}, CancellationToken)"/>.</summary>
    /// <param name="func">The asynchronous work.</param>
    /// <param name="cancellationToken">Cancels the call if it fires before the function starts.</param>
    /// <returns>A <see cref="ValueTask"/> to await exactly once.</returns>
    public ValueTask InvokeAsync(Func<ValueTask> func, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return StartVoid(func, InvokeOperation<VoidResult>.AsyncActionKind, cancellationToken);
    }

    private ValueTask<T> Start<T>(object func, byte kind, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<T>(cancellationToken);
        InvokeOperation<T> op = InvokeOperation<T>.Start(this, func, kind, cancellationToken, out short version);
        return new ValueTask<T>(op, version);
    }

    private ValueTask StartVoid(object func, byte kind, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
        InvokeOperation<VoidResult> op = InvokeOperation<VoidResult>.Start(this, func, kind, cancellationToken, out short version);
        return new ValueTask(op, version);
    }

    /// <summary>An async function given to InvokeAsync is in flight on this CPU (owner only; release: see <see cref="AcceptedWork"/>).</summary>
    internal void CountAsyncStarted() => Volatile.Write(ref Own.AsyncStarted, Own.AsyncStarted + 1);

    /// <summary>That function has completed and its outcome is on its way (owner only; release, after the reply was accepted).</summary>
    internal void CountAsyncFinished() => Volatile.Write(ref Own.AsyncFinished, Own.AsyncFinished + 1);
}
