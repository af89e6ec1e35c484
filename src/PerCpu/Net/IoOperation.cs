using System.Threading.Tasks.Sources;

namespace PerCpu.Net;

/// <summary>
/// One pending socket operation's awaitable, reused for every operation of its kind on a connection: steady-state
/// receives and sends allocate nothing. Completed on the owning CPU; the awaiter's continuation goes to the context it
/// captured (the CPU's <see cref="SynchronizationContext"/>, so it runs in the CPU's task phase) or, with
/// <c>ConfigureAwait(false)</c>, runs inline on the CPU. Owner only.
/// </summary>
internal sealed class IoOperation : IValueTaskSource<int>, IValueTaskSource
{
    private ManualResetValueTaskSourceCore<int> _core; // RunContinuationsAsynchronously = false: see above

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
        _core.SetResult(result);
    }

    public void Fail(Exception error)
    {
        Pending = false;
        _core.SetException(error);
    }

    int IValueTaskSource<int>.GetResult(short token) => _core.GetResult(token);

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _core.OnCompleted(continuation, state, token, flags);
}
