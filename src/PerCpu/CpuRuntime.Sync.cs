using PerCpu.Sync;

namespace PerCpu;

// CPU synchronization (DragonFly lwkt_cpusync_*): interlock, deinterlock, run-on-all. See Sync/CpuSync.cs.
public sealed partial class CpuRuntime
{
    /// <summary>
    /// Quiesces the CPUs of <paramref name="mask"/> (seed: <c>lwkt_cpusync_interlock</c>): returns once every other CPU
    /// of the mask has acknowledged and runs nothing but IPIs (no tasks, no soft interrupts) until the scope is
    /// disposed. Use it to change state those CPUs read without locks: <c>using (runtime.Interlock(mask)) { … }</c>.
    /// CPUs outside the mask run normally. Keep the scope short and synchronous: the held CPUs wait (they park when
    /// idle) and do none of their other work meanwhile.
    /// <para>
    /// Two synchronizations whose CPUs overlap never run at the same time: each claims its CPUs, in ascending id order,
    /// and a second master waits (a CPU master processing its IPIs meanwhile, so it can be held by the first).
    /// </para>
    /// <para>
    /// From a CPU of this runtime, that CPU is the master: it is not held itself, and it must dispose the scope (do not
    /// await inside it). From a thread that is not a CPU, the thread waits for the acknowledgements; it cannot be
    /// interlocked itself, and may dispose the scope on any thread. The runtime's disposal waits until the scope is
    /// disposed: a scope left open blocks it.
    /// </para>
    /// </summary>
    /// <param name="mask">The CPUs to quiesce; may include the calling CPU.</param>
    /// <returns>The open scope; dispose it to let the CPUs go.</returns>
    /// <exception cref="ArgumentException">The mask names a CPU this runtime does not have.</exception>
    /// <exception cref="InvalidOperationException">Called inside an open scope, inside a cpusync function, or on a CPU held by another master.</exception>
    /// <exception cref="ObjectDisposedException">The runtime is disposed (from a thread that is not a CPU).</exception>
    /// <exception cref="TimeoutException">A CPU did not acknowledge, or another master did not let it go, within <see cref="CpuRuntimeOptions.WaitTimeout"/>; every CPU already held was let go.</exception>
    public CpuSyncScope Interlock(CpuMask mask) => InterlockCore(mask, null, null);

    /// <summary>
    /// Like <see cref="Interlock(CpuMask)"/>, and when the scope is disposed every CPU of <paramref name="mask"/> runs
    /// <paramref name="func"/>(<paramref name="state"/>) once before it resumes (the calling CPU too, if it is in the
    /// mask): for example to drop a cache of the state the scope changed.
    /// </summary>
    /// <param name="mask">The CPUs to quiesce; may include the calling CPU.</param>
    /// <param name="func">Runs once on each CPU of the mask at deinterlock; a static lambda allocates nothing. Its exceptions reach the disposer.</param>
    /// <param name="state">Passed to <paramref name="func"/>.</param>
    /// <returns>The open scope; dispose it to run the function and let the CPUs go.</returns>
    /// <exception cref="ArgumentException">The mask names a CPU this runtime does not have.</exception>
    /// <exception cref="InvalidOperationException">Called inside an open scope, inside a cpusync function, or on a CPU held by another master.</exception>
    /// <exception cref="ObjectDisposedException">The runtime is disposed (from a thread that is not a CPU).</exception>
    /// <exception cref="TimeoutException">A CPU did not acknowledge within <see cref="CpuRuntimeOptions.WaitTimeout"/>.</exception>
    public CpuSyncScope Interlock(CpuMask mask, Action<object?> func, object? state = null)
    {
        ArgumentNullException.ThrowIfNull(func);
        return InterlockCore(mask, func, state);
    }

    /// <summary>
    /// Runs <paramref name="func"/>(<paramref name="state"/>) once on every CPU of <paramref name="mask"/>, all of them
    /// quiesced at the same time (seed: <c>lwkt_cpusync_simple</c>: interlock, then deinterlock), and returns once all
    /// have run it. The calling CPU runs it too if it is in the mask. Blocks a calling thread that is not a CPU; such
    /// callers may prefer <see cref="RunOnAllAsync"/>.
    /// </summary>
    /// <param name="mask">The CPUs that run the function.</param>
    /// <param name="func">The function; a static lambda allocates nothing.</param>
    /// <param name="state">Passed to <paramref name="func"/>.</param>
    /// <exception cref="ArgumentException">The mask names a CPU this runtime does not have.</exception>
    /// <exception cref="InvalidOperationException">Called inside an open scope, inside a cpusync function, or on a CPU held by another master.</exception>
    /// <exception cref="ObjectDisposedException">The runtime is disposed (from a thread that is not a CPU).</exception>
    /// <exception cref="AggregateException">The function threw on several CPUs (one inner exception per CPU, by CPU id); every CPU has resumed.</exception>
    /// <exception cref="TimeoutException">A CPU did not acknowledge, or ran the function for longer than <see cref="CpuRuntimeOptions.WaitTimeout"/>.</exception>
    /// <remarks>If the function threw on one CPU only, that exception is rethrown as it is; every CPU has resumed either way.</remarks>
    public void RunOnAll(CpuMask mask, Action<object?> func, object? state = null)
    {
        ArgumentNullException.ThrowIfNull(func);
        InterlockCore(mask, func, state).Dispose();
    }

    /// <summary>
    /// <see cref="RunOnAll"/> without blocking the caller. From a thread that is not a CPU, the synchronization runs as
    /// a task on the lowest CPU of the mask, which masters it (so it starts once that CPU is not held by another
    /// master); the returned task completes when all CPUs have run the function, with the exception
    /// <see cref="RunOnAll"/> would throw. On a CPU of this runtime it runs at once, as <see cref="RunOnAll"/>.
    /// </summary>
    /// <param name="mask">The CPUs that run the function.</param>
    /// <param name="func">The function.</param>
    /// <param name="state">Passed to <paramref name="func"/>.</param>
    /// <param name="cancellationToken">Cancels the synchronization if it fires before it starts.</param>
    /// <returns>A task that completes once every CPU of the mask has run the function.</returns>
    /// <exception cref="ArgumentException">The mask names a CPU this runtime does not have.</exception>
    /// <exception cref="InvalidOperationException">Called inside an open scope (from a thread that is not a CPU, nested scopes would wait for themselves).</exception>
    /// <exception cref="ObjectDisposedException">The runtime is disposed.</exception>
    public ValueTask RunOnAllAsync(CpuMask mask, Action<object?> func, object? state = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        CheckMask(mask);
        Cpu? self = CpuSync.CheckCanStart(this); // on a CPU: held / nested checks; elsewhere: disposed / nested scope
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
        if (self != null)
        {
            try
            {
                RunOnAll(mask, func, state);
                return default;
            }
            catch (Exception e)
            {
                return ValueTask.FromException(e);
            }
        }
        int first = -1;
        foreach (int id in mask)
        {
            first = id;
            break;
        }
        if (first < 0) return default;
        var request = new RunOnAllRequest(this, mask, func, state);
        return new ValueTask(Task.Factory.StartNew(RunOnAllRequest.Run, request, cancellationToken,
            TaskCreationOptions.DenyChildAttach, _cpus[first].TaskScheduler));
    }

    /// <summary>The state of a <see cref="RunOnAllAsync"/> task (written before the task is queued, read by it).</summary>
    private sealed class RunOnAllRequest(CpuRuntime runtime, CpuMask mask, Action<object?> func, object? state)
    {
        private readonly CpuRuntime _runtime = runtime;
        private readonly CpuMask _mask = mask;
        private readonly Action<object?> _func = func;
        private readonly object? _state = state;

        public static readonly Action<object?> Run = static r =>
        {
            var request = (RunOnAllRequest)r!;
            request._runtime.RunOnAll(request._mask, request._func, request._state);
        };
    }

    private CpuSyncScope InterlockCore(CpuMask mask, Action<object?>? func, object? state)
    {
        CheckMask(mask);
        Cpu? self = CpuSync.CheckCanStart(this);
        // A CPU reuses its own object (no allocation); an outside thread gets a fresh one (it may be disposed anywhere).
        CpuSync sync = self != null ? self.RentCpuSync() : new CpuSync(this);
        int token = sync.Interlock(self, mask, func, state);
        return new CpuSyncScope(sync, token);
    }
}
