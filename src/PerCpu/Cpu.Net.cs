using System.Net;
using System.Net.Sockets;
using PerCpu.Io;
using PerCpu.Net;
using PerCpu.Platform;

namespace PerCpu;

public sealed partial class Cpu
{
    /// <summary>
    /// Opens a TCP connection to <paramref name="endpoint"/> owned by this CPU: the connect completes here, and so does
    /// every receive and send of the returned connection. Called from another thread, the call goes to this CPU first.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="endpoint"/> is null.</exception>
    /// <exception cref="SocketException">The connection failed (<see cref="SocketError.ConnectionRefused"/>, unreachable, ...).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the connection was established.</exception>
    public ValueTask<CpuConnection> ConnectTcpAsync(IPEndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (t_current != this)
            return InvokeAsync(static s => s.Cpu.ConnectTcpAsync(s.Endpoint, s.Token), (Cpu: this, Endpoint: endpoint, Token: cancellationToken), cancellationToken);
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<CpuConnection>(cancellationToken);
        _shared.IoUsed = true;
        if (!Runtime.UsesReactor) return SocketBackend.ConnectAsync(this, endpoint, cancellationToken);
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Blocking = false;
            socket.NoDelay = true;
            try
            {
                socket.Connect(endpoint);
                return new ValueTask<CpuConnection>(Connected(socket));
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
            {
                return new ValueTask<CpuConnection>(new PendingConnect(this, socket, cancellationToken).Task);
            }
        }
        catch (Exception e)
        {
            socket.Dispose();
            return ValueTask.FromException<CpuConnection>(e);
        }
    }

    internal CpuConnection Connected(Socket socket)
    {
        var connection = new CpuConnection(this, socket);
        IoCounters.Connected++;
        return connection;
    }

    /// <summary>A non-blocking connect waiting for the socket to become writable (connected) or to report an error. Owner only.</summary>
    private sealed class PendingConnect : INetEndpoint, IReadinessHandler
    {
        private readonly Cpu _cpu;
        private readonly Socket _socket;
        private readonly ReactorRegistration _registration;
        private readonly TaskCompletionSource<CpuConnection> _completion = new();
        private readonly CancellationToken _token;
        private CancellationTokenRegistration _cancel;
        private bool _done;

        public INetEndpoint? NetNext { get; set; }
        public bool NetQueued { get; set; }

        public PendingConnect(Cpu cpu, Socket socket, CancellationToken token)
        {
            _cpu = cpu;
            _socket = socket;
            _token = token;
            _registration = cpu.Reactor.Register(socket.SafeHandle, this, IoEvents.Writable);
            cpu.AddEndpoint(this);
            if (token.CanBeCanceled)
                _cancel = token.UnsafeRegister(static s => ((PendingConnect)s!)._cpu.SynchronizationContext.Post(static p => ((PendingConnect)p!).OnCancel(), s), this);
        }

        public Task<CpuConnection> Task => _completion.Task;

        void IReadinessHandler.OnReadiness(ReactorRegistration registration, IoEvents events) => _cpu.QueueSoftNet(this);

        public void OnSoftNet()
        {
            if (_done) return;
            int errno = SocketCalls.PendingError((int)_socket.SafeHandle.DangerousGetHandle());
            if (errno == 0)
            {
                Finish();
                try
                {
                    _completion.TrySetResult(_cpu.Connected(_socket));
                }
                catch (Exception e)
                {
                    _socket.Dispose();
                    _completion.TrySetException(e);
                }
                return;
            }
            if (errno == SocketCalls.EInProgress) return; // not yet (a spurious edge)
            Fail(errno < 0 ? new SocketException((int)SocketError.SocketError) : SocketCalls.Error(errno));
        }

        private void OnCancel()
        {
            if (_done || Cpu.Current != _cpu) return;
            Fail(new OperationCanceledException(_token));
        }

        public void OnShutdown() => Fail(new OperationCanceledException("The runtime is shutting down: the connect was abandoned."));

        public void Abort() => Fail(new ObjectDisposedException(nameof(CpuRuntime), "The runtime stopped before the connection was established."));

        private void Fail(Exception error)
        {
            if (_done) return;
            Finish();
            _socket.Dispose();
            if (error is OperationCanceledException oce && oce.CancellationToken == _token && _token.IsCancellationRequested)
                _completion.TrySetCanceled(_token);
            else
                _completion.TrySetException(error);
        }

        private void Finish()
        {
            _done = true;
            _cancel.Unregister();
            _cpu.Reactor.Unregister(_registration);
            _cpu.RemoveEndpoint(this);
        }
    }
}
