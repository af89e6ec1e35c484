using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using PerCpu.Io;
using PerCpu.Platform;

namespace PerCpu.Net;

/// <summary>
/// A TCP listener whose connections are owned by CPUs: each accepted connection is handed to the handler given to
/// <see cref="CpuRuntime.ListenTcp"/> on the CPU that owns it, which runs it until it returns, then closes the
/// connection. A handler that throws has its connection closed; the exception is counted and reported through
/// <see cref="CpuRuntime.UnhandledException"/>, and the CPU and the other connections go on.
/// </summary>
public sealed class CpuListener : IAsyncDisposable
{
    private readonly CpuRuntime _runtime;
    internal readonly Func<CpuConnection, ValueTask> Handler;
    internal readonly bool NoDelay;
    private readonly int _maxConnections;
    private readonly ListenerPart[] _parts;

    /// <summary>The CPUs connections are dealt to (round robin only).</summary>
    internal readonly int[] Targets;

    /// <summary>Open connections; Interlocked (accepts and closes on every CPU).</summary>
    private int _open;

    private int _disposed;

    internal CpuListener(CpuRuntime runtime, IPEndPoint endpoint, Func<CpuConnection, ValueTask> handler, CpuListenerOptions options)
    {
        _runtime = runtime;
        Handler = handler;
        NoDelay = options.NoDelay;
        _maxConnections = options.MaxConnections;
        CpuMask mask = options.Cpus ?? runtime.AllCpus;
        var cpus = new List<int>();
        foreach (int id in mask)
        {
            if (id >= runtime.CpuCount)
                throw new ArgumentException($"CpuListenerOptions.Cpus names CPU {id}, but the runtime has {runtime.CpuCount} CPUs (0 to {runtime.CpuCount - 1}).", nameof(options));
            cpus.Add(id);
        }
        if (cpus.Count == 0) throw new ArgumentException("CpuListenerOptions.Cpus is empty: name at least one CPU.", nameof(options));
        Targets = [.. cpus];
        bool reusePort = options.Distribution == CpuListenerDistribution.ReusePort;
        _parts = new ListenerPart[reusePort ? Targets.Length : 1];
        IPEndPoint bound = endpoint;
        try
        {
            for (int i = 0; i < _parts.Length; i++)
            {
                Socket socket = Listen(bound, options.Backlog, reusePort);
                // Port 0: the first socket picks the port, the others join it.
                if (i == 0) bound = (IPEndPoint)socket.LocalEndPoint!;
                _parts[i] = new ListenerPart(this, runtime[Targets[i]], socket, deal: !reusePort && Targets.Length > 1);
            }
        }
        catch
        {
            foreach (ListenerPart? part in _parts) part?.CloseSocket();
            throw;
        }
        LocalEndPoint = bound;
        // Registration is the owners' (each CPU's reactor is its own): posted, so ListenTcp returns at once. The
        // kernel queues connections in the backlog meanwhile, and the first softnet run accepts them.
        foreach (ListenerPart part in _parts) part.Cpu.SynchronizationContext.Post(s_start, part);
    }

    private static readonly SendOrPostCallback s_start = static s => ((ListenerPart)s!).Start();

    private static Socket Listen(IPEndPoint endpoint, int backlog, bool reusePort)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            if (reusePort) socket.SetRawSocketOption(1 /* SOL_SOCKET */, 15 /* SO_REUSEPORT */, [1, 0, 0, 0]);
            socket.Bind(endpoint);
            socket.Listen(backlog);
            socket.Blocking = false;
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The address the listener is bound to (with the port the system chose if port 0 was asked for).</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Connections of this listener open now (any thread; a moment old).</summary>
    public int ConnectionCount => Volatile.Read(ref _open);

    /// <summary>The runtime this listener belongs to.</summary>
    public CpuRuntime Runtime => _runtime;

    /// <summary>
    /// Stops accepting and closes the listening sockets. Connections already accepted go on until their handlers
    /// return (the runtime's own disposal ends them: see <see cref="CpuConnection.Closing"/>). Safe to call more than once.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        foreach (ListenerPart part in _parts)
        {
            if (Cpu.Current == part.Cpu) part.Stop();
            else if (!_runtime.IsDisposed)
            {
                try
                {
                    await part.Cpu.InvokeAsync(part.Stop).ConfigureAwait(false);
                }
                catch (ObjectDisposedException)
                {
                    // The runtime began to stop meanwhile: its CPUs close their listeners themselves.
                }
            }
        }
    }

    /// <summary>An accepted connection may open (false: over <see cref="CpuListenerOptions.MaxConnections"/>).</summary>
    internal bool TryOpen()
    {
        if (Interlocked.Increment(ref _open) <= _maxConnections) return true;
        Interlocked.Decrement(ref _open);
        return false;
    }

    internal void Closed() => Interlocked.Decrement(ref _open);

    /// <summary>
    /// Owner: an accepted socket becomes a connection of <paramref name="cpu"/>, and its handler starts there (in the
    /// task phase, not inside softnet). Counted as an asynchronous function in flight until the handler has returned
    /// and the connection is closed, so the runtime's disposal waits for it.
    /// </summary>
    internal void Adopt(Cpu cpu, Socket socket)
    {
        if (!TryOpen())
        {
            socket.Dispose();
            return;
        }
        CpuConnection connection;
        try
        {
            if (NoDelay) socket.NoDelay = true;
            connection = new CpuConnection(cpu, socket);
        }
        catch (Exception e)
        {
            Closed();
            socket.Dispose();
            cpu.ReportException(e, Cpu.ExternalSource);
            return;
        }
        cpu.IoCounters.Accepted++;
        cpu.CountAsyncStarted();
        _ = RunHandlerAsync(cpu, connection);
    }

    private async Task RunHandlerAsync(Cpu cpu, CpuConnection connection)
    {
        // Leave softnet (or the IPI that dealt the connection): the handler runs as a task on its CPU.
        await Task.Yield();
        try
        {
            await Handler(connection);
        }
        catch (OperationCanceledException) when (connection.IsShutDown)
        {
            // The runtime is stopping and ended the receive: the expected way out.
        }
        catch (Exception e)
        {
            cpu.IoCounters.HandlerErrors++;
            cpu.ReportException(e, Cpu.ExternalSource);
        }
        finally
        {
            try
            {
                await connection.DisposeAsync();
            }
            catch (Exception e)
            {
                cpu.ReportException(e, Cpu.ExternalSource);
            }
            Closed();
            cpu.CountAsyncFinished();
        }
    }

    /// <summary>Accepted on one CPU for another (round robin): the socket travels in an IPI.</summary>
    internal static readonly Action<object?, long> s_adopt = static (state, _) =>
    {
        var (listener, socket) = ((CpuListener, Socket))state!;
        listener.Adopt(Cpu.Current!, socket);
    };
}

/// <summary>One listening socket, owned by one CPU: accepts in softnet when the reactor reports it readable.</summary>
internal sealed unsafe class ListenerPart : INetEndpoint, IReadinessHandler
{
    private readonly CpuListener _listener;
    internal readonly Cpu Cpu;
    private readonly Socket _socket;
    private ReactorRegistration _registration;
    private bool _started, _stopped;
    private int _next; // round robin cursor (owner only)

    public INetEndpoint? NetNext { get; set; }
    public bool NetQueued { get; set; }

    /// <summary>Round robin: this part deals its connections to the listener's CPUs instead of keeping them.</summary>
    private readonly bool _deal;

    public ListenerPart(CpuListener listener, Cpu cpu, Socket socket, bool deal)
    {
        _listener = listener;
        _deal = deal;
        Cpu = cpu;
        _socket = socket;
    }

    /// <summary>Owner: registers with the reactor and accepts what the backlog already holds.</summary>
    public void Start()
    {
        if (Cpu.Current != Cpu || _stopped)
        {
            // Posted after the runtime stopped (it ran on the thread pool), or disposed before it started.
            _stopped = true;
            CloseSocket();
            return;
        }
        _reactorMode = Cpu.Runtime.UsesReactor;
        if (_reactorMode) _registration = Cpu.Reactor.Register(_socket.SafeHandle, this, IoEvents.Readable);
        _started = true;
        Cpu.AddEndpoint(this); // shuts us down at once if the runtime's disposal already reached this CPU
        if (_stopped) return;
        if (_reactorMode) Cpu.QueueSoftNet(this);
        else _ = SocketBackend.AcceptLoopAsync(this, _socket); // started here: it resumes on this CPU
    }

    /// <summary>False on the portable backend: an accept loop on .NET's async Socket instead of the reactor.</summary>
    private bool _reactorMode;

    void IReadinessHandler.OnReadiness(ReactorRegistration registration, IoEvents events) => Cpu.QueueSoftNet(this);

    private const int AcceptBatch = 64;

    public void OnSoftNet()
    {
        if (_stopped) return;
        int fd = (int)_socket.SafeHandle.DangerousGetHandle();
        for (int i = 0; i < AcceptBatch; i++)
        {
            int client = SocketCalls.Accept4(fd, null, null, SocketCalls.SockNonBlock | SocketCalls.SockCloExec);
            if (client < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == SocketCalls.EAgain) return;
                if (errno is SocketCalls.EIntr or 103 /* ECONNABORTED */ or 71 /* EPROTO */) continue;
                // EMFILE/ENFILE/ENOBUFS: the connection stays in the backlog; say so and try again on the next edge.
                Cpu.Runtime.RaiseWarning(Cpu, $"accept4 on {_listener.LocalEndPoint} failed ({Epoll.Describe(errno)}): raise the descriptor limit (ulimit -n) or lower the connection count.");
                return;
            }
            Socket socket;
            try
            {
                socket = new Socket(new SafeSocketHandle(client, ownsHandle: true));
            }
            catch (Exception e)
            {
                Epoll.CloseFd(client);
                Cpu.ReportException(e, Cpu.ExternalSource);
                continue;
            }
            Deal(socket);
        }
        Cpu.QueueSoftNet(this); // the batch ran out: more next pass, after the IPIs
    }

    /// <summary>Owner: gives an accepted socket to its CPU (this one, or the next in turn for round robin).</summary>
    internal void Deal(Socket socket)
    {
        Cpu target = Cpu;
        if (_deal)
        {
            int[] targets = _listener.Targets;
            target = Cpu.Runtime[targets[_next]];
            _next = _next + 1 == targets.Length ? 0 : _next + 1;
        }
        if (target == Cpu) _listener.Adopt(Cpu, socket);
        else target.Send(CpuListener.s_adopt, (_listener, socket)); // the tuple's box: once per connection
    }

    public void OnShutdown() => Stop();

    public void Abort() => Stop();

    /// <summary>Owner: stops accepting and closes the listening socket.</summary>
    public void Stop()
    {
        if (_stopped) return;
        _stopped = true;
        if (_started)
        {
            if (_reactorMode) Cpu.Reactor.Unregister(_registration);
            Cpu.RemoveEndpoint(this);
        }
        CloseSocket();
    }

    public void CloseSocket() => _socket.Dispose();
}
