using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading.Tasks.Sources;
using PerCpu.Dispatch;

namespace PerCpu.Ipi;

/// <summary>The result type of operations that return nothing.</summary>
internal readonly struct VoidResult;

/// <summary>The kinds of function <see cref="InvokeOperation{TState, T}"/> runs (with or without a state argument).</summary>
internal enum InvokeKind : byte
{
    /// <summary><c>Func&lt;T&gt;</c> / <c>Func&lt;TState, T&gt;</c>.</summary>
    Func,
    /// <summary>Returns <c>ValueTask&lt;T&gt;</c>.</summary>
    AsyncFunc,
    /// <summary>Returns <c>Task&lt;T&gt;</c>.</summary>
    TaskFunc,
    /// <summary><c>Action</c> / <c>Action&lt;TState&gt;</c>.</summary>
    Action,
    /// <summary>Returns <c>ValueTask</c>.</summary>
    AsyncAction,
    /// <summary>Returns <c>Task</c>.</summary>
    TaskAction,
}

/// <summary>
/// One pooled <see cref="Cpu.InvokeAsync{T}(Func{T}, CancellationToken)"/> (Seastar's <c>submit_to</c>): the request
/// travels to the target as an IPI, the result comes back to a calling CPU as an IPI through the reverse ring, or to
/// any other caller through the thread pool (the operation is its own work item, so nothing is allocated). A version
/// token guards against use after the awaiter returned it to the pool. <typeparamref name="TState"/> is the type of
/// the state argument of the state-passing overloads (<see cref="VoidResult"/> for the others): the state travels in
/// the pooled operation, so a value type is not boxed.
/// <para>
/// Threads: the caller fills the request fields before the send and the target reads them after (ordered by the ring
/// or inbox publication); the target writes the result before the reply IPI or the thread-pool queueing, which order it
/// before the caller's read; <see cref="_continuation"/> is the one field both sides race on, with atomics. From a
/// thread that is not a CPU, a call that finds the inbox full waits as an <see cref="InboxWaiter"/> (its base class)
/// without blocking the caller; such an operation is not returned to the pool if its token can cancel it (a late
/// cancellation callback must never find it reused).
/// </para>
/// </summary>
internal sealed class InvokeOperation<TState, T> : InboxWaiter, IValueTaskSource<T>, IValueTaskSource, IThreadPoolWorkItem
{
    private static readonly Action<object?> s_completed = static _ => throw new InvalidOperationException("completion sentinel");
    private static readonly Action<object?, long> s_runOnTarget = static (op, _) => ((InvokeOperation<TState, T>)op!).RunOnTarget();
    private static readonly Action<object?, long> s_completeOnCaller = static (op, _) => ((InvokeOperation<TState, T>)op!).SignalCompletion();

    // ---- pool: a per-thread slot (CPU callers get theirs back on the same thread) and a small shared queue ----
    [ThreadStatic] private static InvokeOperation<TState, T>? t_cached;
    private static readonly ConcurrentQueue<InvokeOperation<TState, T>> s_pool = new();
    private static int s_poolCount;
    private const int MaxPooled = 256;

    // ---- request (caller writes, target reads) ----
    private object? _func;
    private TState? _state;
    private InvokeKind _kind;
    private bool _withState;
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

    private static InvokeOperation<TState, T> Rent()
    {
        InvokeOperation<TState, T>? op = t_cached;
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
        return new InvokeOperation<TState, T>();
    }

    private void Return()
    {
        if (Unpooled)
        {
            _version++; // a second await of the ValueTask is still refused
            return; // see the class remarks: a cancellation callback may still hold it
        }
        _func = null;
        _state = default;
        // State and the FIFO links are left alone: only the inbox writes them, under its lock (see Inbox.Pump).
        WaitFunc = null;
        WaitArg1 = null;
        WaitInbox = null;
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

    /// <summary>
    /// Starts the operation on <paramref name="target"/> and returns the operation's version for the ValueTask. From a
    /// CPU the request goes through the ring (a CPU that waits for room keeps draining its own queues); from any other
    /// thread through the inbox, and if the inbox is full the operation waits for room without blocking the caller.
    /// </summary>
    internal static InvokeOperation<TState, T> Start(Cpu target, object func, InvokeKind kind, bool withState, TState? state,
        CancellationToken cancellationToken, out short version)
    {
        InvokeOperation<TState, T> op = Rent();
        op._func = func;
        op._kind = kind;
        op._withState = withState;
        op._state = state;
        op._cancellationToken = cancellationToken;
        op._target = target;
        Cpu? current = Cpu.Current;
        op._caller = current != null && current.Runtime == target.Runtime ? current : null;
        version = op._version;
        try
        {
            if (current != null) target.Send(s_runOnTarget, op, 0); // another runtime's CPU: Send says why not
            else
            {
                op.WaitFunc = s_runOnTarget;
                op.WaitArg1 = op;
                target.SendOrWaitFromOutside(op, cancellationToken);
            }
        }
        catch
        {
            op.Return(); // never published (the sends throw before they enqueue or wait)
            throw;
        }
        return op;
    }

    /// <summary>The token fired while the call waited for inbox room: it never ran; the caller sees the cancellation.</summary>
    internal override void OnWaitCanceled(CancellationToken cancellationToken)
    {
        _error = ExceptionDispatchInfo.Capture(new OperationCanceledException(cancellationToken));
        Deliver();
    }

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
                case InvokeKind.Func:
                    _result = _withState ? ((Func<TState, T>)_func!)(_state!) : ((Func<T>)_func!)();
                    break;
                case InvokeKind.Action:
                    if (_withState) ((Action<TState>)_func!)(_state!);
                    else ((Action)_func!)();
                    break;
                case InvokeKind.AsyncFunc:
                    if (AwaitInner(_withState ? ((Func<TState, ValueTask<T>>)_func!)(_state!) : ((Func<ValueTask<T>>)_func!)())) return;
                    break;
                case InvokeKind.TaskFunc:
                    if (AwaitInner(new ValueTask<T>((_withState ? ((Func<TState, Task<T>>)_func!)(_state!) : ((Func<Task<T>>)_func!)()) ?? throw NullTask()))) return;
                    break;
                case InvokeKind.AsyncAction:
                    if (AwaitInner(_withState ? ((Func<TState, ValueTask>)_func!)(_state!) : ((Func<ValueTask>)_func!)())) return;
                    break;
                case InvokeKind.TaskAction:
                    if (AwaitInner(new ValueTask((_withState ? ((Func<TState, Task>)_func!)(_state!) : ((Func<Task>)_func!)()) ?? throw NullTask()))) return;
                    break;
            }
        }
        catch (Exception e)
        {
            _error = ExceptionDispatchInfo.Capture(e);
        }
        Deliver();
    }

    private static InvalidOperationException NullTask() => new(
        "The function given to InvokeAsync returned a null Task: return a Task (for example Task.CompletedTask), or make it an async method.");

    /// <summary>
    /// An asynchronous function returned <paramref name="task"/>: true if it is still running (the outcome is delivered
    /// when it completes, resuming on this CPU, whose SynchronizationContext is current); false with the result stored
    /// if it has completed (an exception propagates to the caller's catch).
    /// </summary>
    private bool AwaitInner(ValueTask<T> task)
    {
        if (task.IsCompleted)
        {
            _result = task.GetAwaiter().GetResult();
            return false;
        }
        _target!.CountAsyncStarted();
        _innerAwaiter = task.ConfigureAwait(true).GetAwaiter();
        _innerAwaiter.UnsafeOnCompleted(_onInnerCompleted ??= OnInnerCompleted);
        return true;
    }

    /// <inheritdoc cref="AwaitInner(ValueTask{T})"/>
    private bool AwaitInner(ValueTask task)
    {
        if (task.IsCompleted)
        {
            task.GetAwaiter().GetResult();
            return false;
        }
        _target!.CountAsyncStarted();
        _innerVoidAwaiter = task.ConfigureAwait(true).GetAwaiter();
        _innerVoidAwaiter.UnsafeOnCompleted(_onInnerCompleted ??= OnInnerCompleted);
        return true;
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
            if (_kind is InvokeKind.AsyncFunc or InvokeKind.TaskFunc) _result = _innerAwaiter.GetResult();
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

    private static readonly Action<object?> s_onInnerCompletedHome = static op => ((InvokeOperation<TState, T>)op!).OnInnerCompleted();

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
