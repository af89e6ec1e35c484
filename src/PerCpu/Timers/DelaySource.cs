using System.Threading.Tasks.Sources;
using PerCpu.Dispatch;

namespace PerCpu.Timers;

/// <summary>
/// One pooled <see cref="Cpu.Delay"/>: a callout on its CPU's wheel and the <see cref="IValueTaskSource"/> its awaiter
/// sees. Expiry is noticed at <see cref="SoftLevel.Clock"/> (softclock calls <see cref="Fire"/>), which queues the
/// completion as a task of the CPU, so that the awaiting code resumes at task level, not inside softclock.
/// <para>
/// Threads: everything but the cancellation callback runs on the owning CPU (armed, fired, cancelled, completed,
/// returned to the CPU's pool). The callback (any thread, whoever cancels the token) only queues
/// <see cref="s_cancelOnCpu"/> to the CPU; the CPU then disarms and completes. A source whose callback may still run
/// (it could not be unregistered) is never pooled again, so a late callback can never cancel a later delay.
/// </para>
/// </summary>
internal sealed class DelaySource : TimerNode, IValueTaskSource
{
    private static readonly Action<object?> s_complete = static s => ((DelaySource)s!).Complete(null);
    private static readonly Action<object?> s_cancelOnCpu = static s => ((DelaySource)s!).CancelOnCpu();
    private static readonly Action<object?, CancellationToken> s_onCancel = static (s, _) =>
    {
        var source = (DelaySource)s!;
        // Any thread. EnqueueTask never throws and never drops: from this runtime's CPUs through their rings, from other
        // threads through the bounded posts (after the runtime stopped: the thread pool, where CancelOnCpu does nothing).
        source._cpu.EnqueueTask(new TaskItem(s_cancelOnCpu, source));
    };

    private readonly Cpu _cpu;

    /// <summary>Completion, version and continuation (continuations run inline, except when abandoned). Written by the owner; the awaiter reads its status (on the owner, or after completion).</summary>
    private ManualResetValueTaskSourceCore<bool> _core;

    private CancellationToken _token;
    private CancellationTokenRegistration _registration;

    /// <summary>False once the cancellation callback may still run for this use: the source is then not pooled again. Owner only.</summary>
    private bool _poolable;

    /// <summary>The next idle source in the CPU's pool. Owner only.</summary>
    internal DelaySource? NextFree;

    internal DelaySource(Cpu cpu) => _cpu = cpu;

    /// <summary>Owner: arms the callout and returns the awaitable.</summary>
    internal ValueTask Start(long due, CancellationToken token)
    {
        _poolable = true;
        _token = token;
        if (token.CanBeCanceled) _registration = token.UnsafeRegister(s_onCancel, this);
        // Arm after registering: a callback that runs at once (cancelled meanwhile) only queues a task, which finds it armed.
        _cpu.ArmTimer(this, due);
        return new ValueTask(this, _core.Version);
    }

    /// <summary>Softclock, on the owning CPU: due. The completion runs as a task of the CPU (no allocation: a static callback and this).</summary>
    protected internal override void Fire() => _cpu.EnqueueTask(new TaskItem(s_complete, this));

    /// <summary>The owning CPU, queued by the token's callback: cancels if the delay is still armed (otherwise it already fired).</summary>
    private void CancelOnCpu()
    {
        if (Cpu.Current != _cpu) return; // the runtime stopped: AbandonTimers completed it already
        if (_cpu.DisarmTimer(this)) Complete(new OperationCanceledException(_token));
    }

    /// <summary>Owner: completes this use, with <paramref name="error"/> or successfully; the awaiter's continuation runs here, inline.</summary>
    private void Complete(Exception? error)
    {
        if (_token.CanBeCanceled && !_registration.Unregister() && error is not OperationCanceledException)
            _poolable = false; // the callback ran or runs now: it has queued (or will queue) a CancelOnCpu for this source
        _registration = default;
        _token = default;
        if (error == null) _core.SetResult(true);
        else _core.SetException(error);
    }

    /// <summary>The owning CPU stopped for good while this delay was armed: complete with ObjectDisposedException, continuation on the thread pool.</summary>
    protected internal override void Abandon()
    {
        _poolable = false;
        _registration.Unregister();
        _core.RunContinuationsAsynchronously = true; // never resume user code on an exiting CPU thread
        _core.SetException(new ObjectDisposedException(nameof(CpuRuntime), $"The CpuRuntime was disposed while this Cpu.Delay was pending on CPU {_cpu.Id}."));
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        // Awaited on the owning CPU: the completion already runs there as a task, so the continuation runs inline then
        // (what posting to the CPU's context would do, without the post's allocation).
        if ((flags & ValueTaskSourceOnCompletedFlags.UseSchedulingContext) != 0 && Cpu.Current == _cpu
            && (SynchronizationContext.Current == _cpu.SynchronizationContext || (SynchronizationContext.Current == null && TaskScheduler.Current == _cpu.TaskScheduler)))
            flags &= ~ValueTaskSourceOnCompletedFlags.UseSchedulingContext;
        _core.OnCompleted(continuation, state, token, flags);
    }

    public void GetResult(short token)
    {
        if (token != _core.Version)
            throw new InvalidOperationException("This ValueTask from Cpu.Delay was already awaited; a ValueTask may be consumed only once.");
        try
        {
            _core.GetResult(token);
        }
        finally
        {
            // Pooled only on its own CPU (the pool is owner-only) and only when no callback can come late.
            if (_poolable && Cpu.Current == _cpu)
            {
                _core.Reset();
                _cpu.ReturnDelaySource(this);
            }
        }
    }
}
