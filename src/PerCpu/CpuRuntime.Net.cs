using System.Net;
using PerCpu.Net;
using PerCpu.Platform;

namespace PerCpu;

// Sockets owned by CPUs (issue 12): listeners, and the I/O step of the runtime's disposal.
public sealed partial class CpuRuntime
{
    /// <summary>
    /// Listens for TCP connections on <paramref name="endpoint"/> and runs <paramref name="handler"/> for each accepted
    /// connection on the CPU that owns it (by default one <c>SO_REUSEPORT</c> socket per CPU: see
    /// <see cref="CpuListenerOptions.Distribution"/>). The handler's connection is closed when it returns or throws;
    /// an exception is counted and reported through <see cref="UnhandledException"/>, never fatal to the CPU. Returns
    /// once the sockets are bound (port 0 picks a free port: read <see cref="CpuListener.LocalEndPoint"/>).
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="endpoint"/> or <paramref name="handler"/> is null.</exception>
    /// <exception cref="ArgumentException"><see cref="CpuListenerOptions.Cpus"/> names no CPU or one this runtime does not have.</exception>
    /// <exception cref="System.Net.Sockets.SocketException">The address cannot be bound (in use, not local, permission).</exception>
    /// <exception cref="ObjectDisposedException">The runtime is being disposed.</exception>
    public CpuListener ListenTcp(IPEndPoint endpoint, Func<CpuConnection, ValueTask> handler, CpuListenerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(handler);
        ObjectDisposedException.ThrowIf(_shared.Disposing, this);
        options ??= new CpuListenerOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Backlog, 1, "options.Backlog");
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxConnections, 1, "options.MaxConnections");
        if (_shared.Manual)
            throw new InvalidOperationException("Sockets need CPU threads: start the runtime with CpuRuntime.Start, not StartManual.");
        _shared.IoUsed = true;
        return new CpuListener(this, endpoint, handler, options);
    }

    /// <summary>The socket and timer counters of every CPU, summed (totals since the runtime started). Any thread.</summary>
    public CpuIoStatistics GetIoStatistics()
    {
        CpuIoStatistics total = default;
        foreach (Cpu cpu in _cpus) total += cpu.GetIoStatistics();
        return total;
    }

    /// <summary>
    /// True where CPU-owned sockets run on each CPU's epoll reactor (Linux x86-64/arm64); elsewhere (or with the
    /// <see cref="CpuRuntimeOptions.SocketBackend"/> test hook) on the portable backend: .NET's asynchronous
    /// <see cref="System.Net.Sockets.Socket"/>, whose completions run on the thread pool and post the awaiting
    /// continuation to the owning CPU (functionally the same, one hop slower per operation).
    /// </summary>
    internal bool UsesReactor => SocketCalls.IsSupported && !_shared.Options.SocketBackend;

    internal sealed partial class Shared
    {
        /// <summary>A listener or connection was created: disposal must shut down I/O on every CPU. Set by any thread, read by the disposer.</summary>
        public volatile bool IoUsed;
    }

    /// <summary>
    /// Disposal, step 0 (before outside calls are refused): every CPU stops accepting and ends its connections'
    /// receives (<see cref="CpuConnection.Closing"/>); sends go on. Handlers then return, and the quiescence the later
    /// phases wait for includes them.
    /// </summary>
    private async Task ShutdownIoAsync()
    {
        if (_shared.Manual || !_shared.IoUsed) return;
        var pending = new Task[_cpus.Length];
        for (int i = 0; i < _cpus.Length; i++)
        {
            Cpu cpu = _cpus[i];
            pending[i] = cpu.InvokeAsync(cpu.ShutdownIo).AsTask();
        }
        await Task.WhenAll(pending).ConfigureAwait(false);
    }
}
