using PerCpu.Sync;

namespace PerCpu;

/// <summary>
/// An open CPU synchronization, from <see cref="CpuRuntime.Interlock(CpuMask)"/>: while it is open every other CPU of
/// the mask is quiesced (it runs IPIs only: no tasks, no soft interrupts). <see cref="Dispose"/> lets them go.
/// <para>
/// A struct, so that opening and closing a scope allocates nothing: it carries a reference to a synchronization object
/// (reused per CPU) and a token, so a second <see cref="Dispose"/> of the same scope, or of a copy, does nothing. The
/// default value is an empty scope whose <see cref="Dispose"/> does nothing.
/// </para>
/// </summary>
public readonly struct CpuSyncScope : IDisposable
{
    private readonly CpuSync? _sync;
    private readonly int _token;

    internal CpuSyncScope(CpuSync sync, int token)
    {
        _sync = sync;
        _token = token;
    }

    /// <summary>
    /// Deinterlocks (seed: <c>lwkt_cpusync_deinterlock</c>): every CPU of the mask runs the scope's function once (the
    /// calling CPU too, if it is in the mask) and resumes; returns once all have. Does nothing if already disposed.
    /// </summary>
    /// <exception cref="InvalidOperationException">The scope was opened on a CPU and this is another thread: dispose it on that CPU.</exception>
    /// <exception cref="AggregateException">The function threw on several CPUs (one inner exception per CPU, by CPU id). Every CPU has resumed.</exception>
    /// <exception cref="TimeoutException">A CPU ran the function for longer than <see cref="CpuRuntimeOptions.WaitTimeout"/>; it resumes when it returns.</exception>
    /// <remarks>If the function threw on one CPU only, that exception is rethrown as it is.</remarks>
    public void Dispose() => _sync?.Deinterlock(_token);
}
