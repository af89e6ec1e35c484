using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading.Tasks.Sources;
using PerCpu.Dispatch;

namespace PerCpu.Ipi;

/// <summary>The result type of operations that return nothing.</summary>
internal readonly struct VoidResult;

/// <summary>
/// One pooled <see cref="Cpu.InvokeAsync{T}(Func{T}, CancellationToken)"/> (Seastar's <c>submit_to</c>): the request
/// travels to the target as an IPI, the result comes back to a calling CPU as an IPI through the reverse ring, or to
/// any other caller through the thread pool (the operation is its own work item, so nothing is allocated). A version
/// token guards against use after the awaiter returned it to the pool.
/// <para>
/// Threads: the caller fills the request fields before the send and the target reads them after (ordered by the ring
/// or inbox publication); the target writes the result before the reply IPI or the thread-pool queueing, which order it
/// before the caller's read; <see cref="_continuation"/> is the one field both sides race on, with atomics.
/// </para>
/// </summary>
internal sealed class InvokeOperation<T> : IValueTaskSource<T>, IValueTaskSource, IThreadPoolWorkItem
{
    private enum Kind : byte { Func, AsyncFunc, Action, AsyncAction }

    private static readonly Action<object?> s_completed = static _ => throw new InvalidOperationException("completion sentinel");
    private static readonly Action<object?, long> s_runOnTarget = static (op, _) => ((InvokeOperation<T>)op!).RunOnTarget();
    private static readonly Action<object?, long> s_completeOnCaller = static (op, _) => ((InvokeOperation<T>)op!).SignalCompletion();

    // ---- pool: a per-thread slot (CPU callers get theirs back on the same thread) and a small shared queue ----
    [ThreadStatic] private static InvokeOperation<T>? t_cached;
    private static readonly ConcurrentQueue<InvokeOperation<T>> s_pool = new();
    private static int s_poolCount;
    private const int MaxPooled = 256;

    // ---- request (caller writes, target reads) ----
    private object? _func;
    private Kind _kind;
    private CancellationToken _cancellationToken;
    private Cpu? _caller;
    private Cpu? _target;

    // ---- result (target writes, caller reads) ----
    private T? _result;
    private ExceptionDispatchInfo? _error;

    // ---- awaiter side ----
    /// <summary>Null, the awaiter's continuation, or <see cref="s_completed"/>: swapped with atomics by both sides.</summary>
    private Action<object?>? _continuation;
    private object? _continuationState;
    /// <summary>Where the continuation must run: null (anywhere), a <see cref="Cpu"/>, a SynchronizationContext or a TaskScheduler.</summary>
    private object? _scheduler;
    private ExecutionContext? _executionContext;
    /// <summary>A continuation to run from <see cref="IThreadPoolWorkItem.Execute"/>.</summary>
    private Action<object?>? _poolContinuation;
    private short _version;

    // ---- async function on the target ----
    private ConfiguredValueTaskAwaitable<T>.ConfiguredValueTaskAwaiter _innerAwaiter;
    private ConfiguredValueTaskAwaitable.ConfiguredValueTaskAwaiter _innerVoidAwaiter;
    private Action? _onInnerCompleted;

    private static InvokeOperation<T> Rent()
    {
        InvokeOperation<T>? op = t_cached;
        if (op != null)
        {
            t_cached = null;
            return op;
        }
        if (s_pool.TryDequeue(out op))
        {
            Interlocked.Decrement(ref s_poolCount);
            return op;
        }
        return new InvokeOperation<T>();
    }

    private void Return()
    {
        _func = null;
        _caller = _target = null;
        _cancellationToken = default;
        _result = default;
        _error = null;
        _continuationState = _scheduler = null;
        _executionContext = null;
        _poolContinuation = null;
        _innerAwaiter = default;
        _innerVoidAwaiter = default;
        _version++;
        Volatile.Write(ref _continuation, null);
        if (t_cached == null)
        {
            t_cached = this;
        }
        else if (Interlocked.Increment(ref s_poolCount) <= MaxPooled)
        {
            s_pool.Enqueue(this);
        }
        else
        {
            Interlocked.Decrement(ref s_poolCount);
        }
    }

    /// <summary>Starts the operation on <paramref name="target"/> and returns the operation's version for the ValueTask.</summary>
    internal static InvokeOperation<T> Start(Cpu target, object func, byte kind, CancellationToken cancellationToken, out short version)
    {
        InvokeOperation<T> op = Rent();
        op._func = func;
        op._kind = (Kind)kind;
        op._cancellationToken = cancellationToken;
        op._target = target;
        Cpu? current = Cpu.Current;
        op._caller = current != null && current.Runtime == target.Runtime ? current : null;
        version = op._version;
        try
        {
            target.Send(s_runOnTarget, op, 0);
        }
        catch
        {
            op.Return();
            throw;
        }
        return op;
    }

    internal const byte FuncKind = (byte)Kind.Func, AsyncFuncKind = (byte)Kind.AsyncFunc, ActionKind = (byte)Kind.Action, AsyncActionKind = (byte)Kind.AsyncAction;

    /// <summary>On the target CPU: runs the function (unless cancelled first) and sends the outcome back.</summary>
    private void RunOnTarget()
    {
        if (_cancellationToken.IsCancellationRequested)
        {
            _error = ExceptionDispatchInfo.Capture(new OperationCanceledException(_cancellationToken));
            Deliver();
            return;
        }
        try
        {
            switch (_kind)
            {
                case Kind.Func:
                    _result = ((Func<T>)_func!)();
                    break;
                case Kind.Action:
                    ((Action)_func!)();
                    break;
                case Kind.AsyncFunc:
                {
                    ValueTask<T> task = ((Func<ValueTask<T>>)_func!)();
                    if (!task.IsCompleted)
                    {
                        // Resume on this CPU (its SynchronizationContext is current), then deliver.
                        _target!.CountAsyncStarted();
                        _innerAwaiter = task.ConfigureAwait(true).GetAwaiter();
                        _innerAwaiter.UnsafeOnCompleted(_onInnerCompleted ??= OnInnerCompleted);
                        return;
                    }
                    _result = task.GetAwaiter().GetResult();
                    break;
                }
                case Kind.AsyncAction:
                {
                    ValueTask task = ((Func<ValueTask>)_func!)();
                    if (!task.IsCompleted)
                    {
                        _target!.CountAsyncStarted();
                        _innerVoidAwaiter = task.ConfigureAwait(true).GetAwaiter();
                        _innerVoidAwaiter.UnsafeOnCompleted(_onInnerCompleted ??= OnInnerCompleted);
                        return;
                    }
                    task.GetAwaiter().GetResult();
                    break;
                }
            }
        }
        catch (Exception e)
        {
            _error = ExceptionDispatchInfo.Capture(e);
        }
        Deliver();
    }

    private void OnInnerCompleted()
    {
        Cpu target = _target!;
        if (Cpu.Current != target && !target.Runtime.Internals.PostsClosed)
        {
            // The awaitable ignored the context (a custom source, or ConfigureAwait(false) inside a ValueTask source):
            // come home, so the outcome is delivered, and the call counted finished, on the CPU that ran it (issue 11
            // item 9). The call is still counted in flight, so the CPU has not stopped taking work.
            target.EnqueueTask(new TaskItem(s_onInnerCompletedHome, this));
            return;
        }
        try
        {
            if (_kind == Kind.AsyncFunc) _result = _innerAwaiter.GetResult();
            else _innerVoidAwaiter.GetResult();
        }
        catch (Exception e)
        {
            _error = ExceptionDispatchInfo.Capture(e);
        }
        _innerAwaiter = default;
        _innerVoidAwaiter = default;
        Deliver();
        // Counted after Deliver: the reply (an IPI) is accepted before this operation stops counting as in flight.
        if (Cpu.Current == target) target.CountAsyncFinished();
        else Interlocked.Increment(ref target.Own.AsyncFinished); // cannot happen while the count says in flight; kept safe anyway
    }

    private static readonly Action<object?> s_onInnerCompletedHome = static op => ((InvokeOperation<T>)op!).OnInnerCompleted();

    /// <summary>On the target: hands the outcome to the caller's side.</summary>
    private void Deliver()
    {
        Cpu? caller = _caller;
        if (caller == null)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
        else if (caller == Cpu.Current)
        {
            SignalCompletion();
        }
        else
        {
            // The reverse ring: the caller runs the completion in its own dispatch loop.
            caller.Send(s_completeOnCaller, this, 0);
        }
    }

    /// <summary>Thread pool: completes for a caller that is not a CPU (or runs a continuation that found the operation already complete).</summary>
    void IThreadPoolWorkItem.Execute()
    {
        Action<object?>? continuation = _poolContinuation;
        if (continuation != null)
        {
            _poolContinuation = null;
            Schedule(continuation);
        }
        else
        {
            SignalCompletion();
        }
    }

    /// <summary>On the caller's side: marks completion and schedules the continuation if one is registered.</summary>
    private void SignalCompletion()
    {
        // Full fence: the result fields are visible to whoever sees the sentinel.
        Action<object?>? continuation = Interlocked.Exchange(ref _continuation, s_completed);
        if (continuation != null) Schedule(continuation);
    }

    /// <summary>Runs or queues the continuation where the awaiter asked: its CPU, its context or scheduler, or here.</summary>
    private void Schedule(Action<object?> continuation)
    {
        object? state = _continuationState;
        if (_executionContext != null) continuation = FlowExecutionContext(_executionContext, continuation);
        switch (_scheduler)
        {
            case Cpu cpu:
                cpu.EnqueueTask(new TaskItem(continuation, state));
                return;
            case SynchronizationContext sc:
                sc.Post(static t =>
                {
                    var (c, st) = ((Action<object?>, object?))t!;
                    c(st);
                }, (continuation, state));
                return;
            case TaskScheduler ts:
                Task.Factory.StartNew(continuation, state, CancellationToken.None, TaskCreationOptions.DenyChildAttach, ts);
                return;
        }
        // No context: on a CPU, run it as a task of this CPU rather than inside the IPI that delivered the result;
        // elsewhere (a thread-pool work item) run it here.
        if (Cpu.Current is { } current) current.EnqueueTask(new TaskItem(continuation, state));
        else continuation(state);
    }

    /// <summary>
    /// Wraps the continuation to run in the captured context. Only OnCompleted (not UnsafeOnCompleted) asks for it, so
    /// the closure is rare; it lives in its own method because a captured local allocates its closure at method entry.
    /// </summary>
    private static Action<object?> FlowExecutionContext(ExecutionContext ec, Action<object?> continuation)
        => s => ExecutionContext.Run(ec, static t =>
        {
            var (c, st) = ((Action<object?>, object?))t!;
            c(st);
        }, (continuation, s));

    // ---- IValueTaskSource ----

    public ValueTaskSourceStatus GetStatus(short token)
    {
        CheckToken(token);
        if (!ReferenceEquals(Volatile.Read(ref _continuation), s_completed)) return ValueTaskSourceStatus.Pending;
        if (_error == null) return ValueTaskSourceStatus.Succeeded;
        return _error.SourceException is OperationCanceledException ? ValueTaskSourceStatus.Canceled : ValueTaskSourceStatus.Faulted;
    }

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        CheckToken(token);
        if ((flags & ValueTaskSourceOnCompletedFlags.FlowExecutionContext) != 0) _executionContext = ExecutionContext.Capture();
        if ((flags & ValueTaskSourceOnCompletedFlags.UseSchedulingContext) != 0)
        {
            SynchronizationContext? sc = SynchronizationContext.Current;
            if (sc is CpuSynchronizationContext cpuContext) _scheduler = cpuContext.Cpu;
            else if (sc != null && sc.GetType() != typeof(SynchronizationContext)) _scheduler = sc;
            else if (TaskScheduler.Current is var ts && ts != TaskScheduler.Default) _scheduler = ts is CpuTaskScheduler ? Cpu.Current : ts;
        }
        _continuationState = state;
        Action<object?>? previous = Interlocked.CompareExchange(ref _continuation, continuation, null);
        if (previous == null) return;
        if (!ReferenceEquals(previous, s_completed)) throw new InvalidOperationException("A ValueTask from InvokeAsync may be awaited only once.");
        // Completed in between: never run it inline here (that could dive deep into the stack).
        if (_scheduler == null && Cpu.Current == null)
        {
            _poolContinuation = continuation;
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
        else
        {
            Schedule(continuation);
        }
    }

    public T GetResult(short token)
    {
        CheckToken(token);
        if (!ReferenceEquals(Volatile.Read(ref _continuation), s_completed))
            throw new InvalidOperationException("The InvokeAsync operation has not completed: await the ValueTask instead of reading its result.");
        ExceptionDispatchInfo? error = _error;
        T result = _result!;
        Return();
        error?.Throw();
        return result;
    }

    void IValueTaskSource.GetResult(short token) => GetResult(token);

    private void CheckToken(short token)
    {
        if (token != _version)
            throw new InvalidOperationException("This ValueTask from InvokeAsync was already awaited; a ValueTask may be consumed only once.");
    }
}
