using System.Threading.Tasks.Sources;

namespace PerCpu.Net;

/// <summary>
/// One pending socket operation's awaitable, reused for every operation of its kind on a connection: steady-state
/// receives and sends allocate nothing. Completed on the owning CPU (in softnet). Owner only.
/// <para>
/// Where the awaiter resumes. An <c>await</c> on the owning CPU captures its <see cref="SynchronizationContext"/>;
/// handing the continuation to that context (what <see cref="ManualResetValueTaskSourceCore{TResult}"/> does) would
/// allocate a box per operation. Since completion happens on that same CPU, the operation instead takes the
/// continuation without the context and completes in a task of the CPU's local queue: the continuation runs on the
/// CPU, in its task phase (not inside softnet), exactly where the context would have run it, and nothing is allocated.
/// An await elsewhere (another thread, another context) keeps the ordinary path.
/// </para>
/// </summary>
internal sealed class IoOperation(Cpu cpu) : IValueTaskSource<int>, IValueTaskSource
{
    private ManualResetValueTaskSourceCore<int> _core; // RunContinuationsAsynchronously = false: see above

    /// <summary>The continuation was taken without the CPU's context: complete from a local task (see above).</summary>
    private bool _completeInTask;
    private int _result;
    private Exception? _error;

    /// <summary>True from <see cref="Start"/> to completion.</summary>
    public bool Pending { get; private set; }

    /// <summary>The token to build the awaited <see cref="ValueTask"/> with.</summary>
    public short Version => _core.Version;

    /// <summary>Begins an operation (the previous one's result must have been consumed: one at a time).</summary>
    public void Start()
    {
        _core.Reset();
        Pending = true;
    }

    public void Complete(int result)
    {
        Pending = false;
        if (_completeInTask)
        {
            _result = result;
            PostCompletion();
        }
        else _core.SetResult(result);
    }

    public void Fail(Exception error)
    {
        Pending = false;
        if (_completeInTask)
        {
            _error = error;
            PostCompletion();
        }
        else _core.SetException(error);
    }

    private void PostCompletion()
    {
        _completeInTask = false;
        cpu.EnqueueTask(new Dispatch.TaskItem(s_completeInTask, this));
    }

    private static readonly Action<object?> s_completeInTask = static s =>
    {
        var operation = (IoOperation)s!;
        Exception? error = operation._error;
        if (error is null) operation._core.SetResult(operation._result);
        else
        {
            operation._error = null;
            operation._core.SetException(error);
        }
    };

    int IValueTaskSource<int>.GetResult(short token) => _core.GetResult(token);

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        // Only while pending: a completed core given a continuation without a context would queue it to the thread
        // pool. (On the owning CPU a pending operation cannot complete before this returns: completion is its softnet's.)
        if (Pending && (flags & ValueTaskSourceOnCompletedFlags.UseSchedulingContext) != 0
            && Cpu.Current == cpu && SynchronizationContext.Current == cpu.SynchronizationContext)
        {
            flags &= ~ValueTaskSourceOnCompletedFlags.UseSchedulingContext;
            _completeInTask = true;
        }
        _core.OnCompleted(continuation, state, token, flags);
    }
}
