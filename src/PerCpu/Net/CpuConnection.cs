using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using PerCpu.Io;
using PerCpu.Platform;

namespace PerCpu.Net;

/// <summary>
/// A TCP connection owned by one CPU: its readiness is reported by that CPU's reactor and processed in softnet
/// (<see cref="SoftLevel.Net"/>), and every receive and send completes on that CPU, with no thread-pool hop. Get one
/// from a listener's handler (<see cref="CpuRuntime.ListenTcp"/>) or from <see cref="Cpu.ConnectTcpAsync"/>.
/// <para>
/// Call it only from its <see cref="Cpu"/> (an <c>await</c> there resumes there, so an async handler stays on it); a
/// call from another thread throws <see cref="InvalidOperationException"/>. One receive and one send may be pending at
/// a time; each completes when the kernel took (or gave) the bytes, so a slow reader makes <see cref="SendAsync(ReadOnlyMemory{byte}, CancellationToken)"/>
/// wait: a connection buffers nothing beyond the caller's memory and the kernel's socket buffer. Steady-state receives
/// and sends allocate nothing.
/// </para>
/// </summary>
[DebuggerDisplay("Connection on CPU {Cpu.Id} to {RemoteEndPoint}")]
public sealed unsafe class CpuConnection : IAsyncDisposable, INetEndpoint, IReadinessHandler
{
    private readonly Cpu _cpu;
    private readonly Socket _socket;
    private readonly int _fd;
    private readonly ReactorRegistration _registration;

    /// <summary>False on the portable backend (<see cref="SocketBackend"/>): no reactor, .NET's async socket calls.</summary>
    private readonly bool _reactorMode;

    /// <summary>Portable backend: cancelled at the runtime's shutdown to end a pending receive. Owner only.</summary>
    internal readonly CancellationTokenSource? ReceiveAbort;

    /// <summary>Portable backend: a send is in flight (set and cleared on the owning CPU by <see cref="SocketBackend"/>).</summary>
    internal bool SocketSendPending;

    private readonly IoOperation _receive, _send, _close;
    private Memory<byte> _receiveBuffer;
    private CancellationToken _receiveToken;
    private CancellationTokenRegistration _receiveCancel;

    private ReadOnlyMemory<byte> _sendMemory;
    private ReadOnlySequence<byte> _sendSequence;
    private bool _sendIsSequence;
    private CancellationToken _sendToken;
    private CancellationTokenRegistration _sendCancel;

    /// <summary>
    /// The socket may hold data: set by every readable edge and at creation, cleared when a recv found the queue empty
    /// (EAGAIN) or drained it (a short read). While clear, a receive waits for the next edge without a recv that would
    /// only return EAGAIN (nginx's <c>rev->ready</c> with edge-triggered epoll). No edge is lost by skipping: data that
    /// arrives after the clear wakes the socket, which queues an edge the next poll delivers. Owner only.
    /// </summary>
    private bool _mayHaveData = true;

    /// <summary>An edge reported the peer's end of stream or an error: <see cref="_mayHaveData"/> stays set. Owner only.</summary>
    private bool _readClosed;

    /// <summary>DisposeAsync waits for the pending send, then closes.</summary>
    private bool _closeAfterSend;
    private bool _closed;

    /// <summary>The runtime is shutting down: receives end, sends go on (see <see cref="Closing"/>).</summary>
    private bool _shutdown;
    private CancellationTokenSource? _closing;

    private EndPoint? _remote, _local;

    /// <summary>The pipe view, created by the first read of <see cref="Transport"/>.</summary>
    private ConnectionPipe? _pipe;
    private Task? _pipeDisposal;

    // softnet queue (INetEndpoint)
    INetEndpoint? INetEndpoint.NetNext { get; set; }
    bool INetEndpoint.NetQueued { get; set; }

    internal CpuConnection(Cpu cpu, Socket socket)
    {
        Debug.Assert(Cpu.Current == cpu);
        _cpu = cpu;
        _socket = socket;
        _receive = new IoOperation(cpu);
        _send = new IoOperation(cpu);
        _close = new IoOperation(cpu);
        _reactorMode = cpu.Runtime.UsesReactor;
        if (_reactorMode)
        {
            _fd = (int)socket.SafeHandle.DangerousGetHandle();
            // Edge-triggered, both directions at once: no epoll_ctl per operation. An edge that comes while nothing is
            // pending is ignored, which is safe because every operation tries the syscall before it waits.
            _registration = cpu.Reactor.Register(socket.SafeHandle, this, IoEvents.Readable | IoEvents.Writable | IoEvents.ReadHangup);
        }
        else ReceiveAbort = new CancellationTokenSource();
        cpu.AddEndpoint(this);
    }

    /// <summary>The CPU that owns this connection: the only thread that may use it.</summary>
    public Cpu Cpu => _cpu;

    /// <summary>The socket (the portable backend's calls go through it).</summary>
    internal Socket Socket => _socket;

    /// <summary>The peer's address (null if the socket could not tell).</summary>
    public EndPoint? RemoteEndPoint => _remote ??= TryGet(static s => s.RemoteEndPoint, _socket);

    /// <summary>This side's address.</summary>
    public EndPoint? LocalEndPoint => _local ??= TryGet(static s => s.LocalEndPoint, _socket);

    /// <summary>
    /// Cancelled when this connection closes (disposed, or closed by its handler's return) or when the runtime begins to
    /// shut down (<see cref="CpuRuntime.DisposeAsync"/>): a handler should finish its current reply and return. Once the
    /// runtime is shutting down, receives end with <see cref="OperationCanceledException"/>; sends still go out, so
    /// what the handler hands over reaches the peer before the connection closes. Like Kestrel's
    /// <c>ConnectionClosed</c>, with the runtime's stop included. Its callbacks run on this connection's CPU (the
    /// close and the shutdown happen there).
    /// </summary>
    public CancellationToken Closing
    {
        get
        {
            CheckOwner();
            if (_shutdown || _closed) return new CancellationToken(canceled: true);
            return (_closing ??= new CancellationTokenSource()).Token;
        }
    }

    /// <summary>
    /// The connection as an <see cref="System.IO.Pipelines.IDuplexPipe"/>, for parsers written against
    /// System.IO.Pipelines: <c>Input</c> is filled by a receive loop and <c>Output</c> drained by a send loop, both on
    /// this CPU (its continuations run here too), with one gathering send per flush and the writer paused past 64 KiB
    /// unsent. Once read, use only the pipe: the loops own <see cref="ReceiveAsync"/> and <see cref="SendAsync(ReadOnlyMemory{byte}, CancellationToken)"/>.
    /// Closing the connection first sends everything written to <c>Output</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException">Not called on the owning CPU.</exception>
    /// <exception cref="ObjectDisposedException">The connection was disposed.</exception>
    public System.IO.Pipelines.IDuplexPipe Transport
    {
        get
        {
            CheckOwner();
            ObjectDisposedException.ThrowIf(_closed, this);
            return _pipe ??= new ConnectionPipe(this);
        }
    }

    /// <summary>
    /// Receives into <paramref name="buffer"/>; completes with the number of bytes received, or 0 once the peer has
    /// closed its side (end of stream). Tries the kernel at once (a completed <see cref="ValueTask{TResult}"/> when data
    /// is there), else completes on this CPU when the socket becomes readable.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="buffer"/> is empty.</exception>
    /// <exception cref="InvalidOperationException">Not called on the owning CPU, or a receive is already pending.</exception>
    /// <exception cref="ObjectDisposedException">The connection was disposed.</exception>
    /// <exception cref="SocketException">The connection failed (reset by the peer, ...); <see cref="SocketException.SocketErrorCode"/> says how.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled, or the runtime is shutting down (<see cref="Closing"/>).</exception>
    public ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        CheckOwner();
        ObjectDisposedException.ThrowIf(_closed, this);
        if (buffer.IsEmpty) throw new ArgumentException("Give a buffer of at least one byte: an empty receive cannot tell data from the end of the stream.", nameof(buffer));
        if (_receive.Pending) throw new InvalidOperationException("A receive is already pending on this connection: await it before starting the next.");
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<int>(cancellationToken);
        if (_shutdown) return ValueTask.FromException<int>(ShutdownError());
        if (!_reactorMode) return SocketBackend.ReceiveAsync(this, buffer, cancellationToken);
        if (_mayHaveData)
        {
            nint n = Recv(buffer.Span, out int errno);
            if (n >= 0) return new ValueTask<int>((int)n);
            if (errno != SocketCalls.EAgain) return ValueTask.FromException<int>(SocketCalls.Error(errno));
        }
        _receiveBuffer = buffer;
        _receiveToken = cancellationToken;
        _receive.Start();
        _cpu.IoCounters.ReceiveWaits++;
        short version = _receive.Version;
        if (cancellationToken.CanBeCanceled)
            _receiveCancel = cancellationToken.UnsafeRegister(s_cancelReceive, this);
        return new ValueTask<int>(_receive, version);
    }

    /// <summary>
    /// Sends all of <paramref name="data"/>; completes once the kernel has taken every byte (at once when the socket
    /// buffer has room, else on this CPU as the peer reads). Keep the memory unchanged until then.
    /// </summary>
    /// <exception cref="InvalidOperationException">Not called on the owning CPU, or a send is already pending (sends are ordered: await each).</exception>
    /// <exception cref="ObjectDisposedException">The connection was disposed.</exception>
    /// <exception cref="SocketException">The connection failed (reset, or the peer closed: <see cref="SocketError.Shutdown"/>).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled; how much was sent is then unknown, so the connection should be closed.</exception>
    public ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        CheckSend(cancellationToken);
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
        if (data.IsEmpty) return default;
        if (!_reactorMode) return SocketBackend.SendAsync(this, data, default, false, cancellationToken);
        _sendMemory = data;
        _sendIsSequence = false;
        return StartSend(cancellationToken);
    }

    /// <summary>
    /// Sends every segment of <paramref name="data"/> in order with gathering sends (sendmsg with up to 64 segments per
    /// call): what a server uses to write a batch of pipelined replies at once. Otherwise as
    /// <see cref="SendAsync(ReadOnlyMemory{byte}, CancellationToken)"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">Not called on the owning CPU, or a send is already pending.</exception>
    /// <exception cref="ObjectDisposedException">The connection was disposed.</exception>
    /// <exception cref="SocketException">The connection failed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public ValueTask SendAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken = default)
    {
        CheckSend(cancellationToken);
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
        if (data.IsEmpty) return default;
        if (!_reactorMode) return SocketBackend.SendAsync(this, default, data, true, cancellationToken);
        if (data.IsSingleSegment)
        {
            _sendMemory = data.First;
            _sendIsSequence = false;
        }
        else
        {
            _sendSequence = data;
            _sendIsSequence = true;
        }
        return StartSend(cancellationToken);
    }

    private void CheckSend(CancellationToken cancellationToken)
    {
        CheckOwner();
        ObjectDisposedException.ThrowIf(_closed || _closeAfterSend, this);
        if (_send.Pending || SocketSendPending) throw new InvalidOperationException("A send is already pending on this connection: await it before starting the next (sends are ordered).");
    }

    private ValueTask StartSend(CancellationToken cancellationToken)
    {
        int errno = PushSend();
        if (errno == 0) return default;
        if (errno != SocketCalls.EAgain)
        {
            ClearSend();
            return ValueTask.FromException(SocketCalls.Error(errno));
        }
        _sendToken = cancellationToken;
        _send.Start();
        _cpu.IoCounters.SendWaits++;
        short version = _send.Version;
        if (cancellationToken.CanBeCanceled)
            _sendCancel = cancellationToken.UnsafeRegister(s_cancelSend, this);
        return new ValueTask(_send, version);
    }

    /// <summary>
    /// Shuts down one or both directions (<see cref="Socket.Shutdown"/>): <see cref="SocketShutdown.Send"/> sends the
    /// peer end-of-stream (a half-close) while receiving goes on.
    /// </summary>
    /// <exception cref="InvalidOperationException">Not called on the owning CPU.</exception>
    /// <exception cref="ObjectDisposedException">The connection was disposed.</exception>
    public void Shutdown(SocketShutdown how)
    {
        CheckOwner();
        ObjectDisposedException.ThrowIf(_closed, this);
        try
        {
            _socket.Shutdown(how);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.NotConnected)
        {
            // The peer is gone already: nothing left to shut down.
        }
    }

    /// <summary>
    /// Closes the connection: a pending receive ends with <see cref="SocketException"/> (<see cref="SocketError.OperationAborted"/>);
    /// a pending send is finished first (or fails), so no byte handed to <see cref="SendAsync(ReadOnlyMemory{byte}, CancellationToken)"/>
    /// is dropped. From another thread it is sent to the owning CPU. Safe to call more than once.
    /// </summary>
    public ValueTask DisposeAsync()
    {
        if (Cpu.Current != _cpu)
        {
            if (_cpu.Runtime.IsDisposed) return default; // the CPU closes whatever is left as it stops
            return _cpu.InvokeAsync(static c => c.DisposeAsync(), this);
        }
        if (_closed) return default;
        if (_pipe is { } pipe)
        {
            // The pipe's send loop sends what was written to Output, then we close (once: later calls share it).
            return new ValueTask(_pipeDisposal ??= pipe.CloseAsync());
        }
        if (_send.Pending || SocketSendPending)
        {
            if (!_closeAfterSend)
            {
                _closeAfterSend = true;
                _close.Start();
            }
            return new ValueTask(_close, _close.Version);
        }
        Close(new SocketException((int)SocketError.OperationAborted));
        return default;
    }

    /// <summary>The pipe has sent everything written to it: close (a no-op if something closed us meanwhile).</summary>
    internal void CloseAfterPipe()
    {
        if (!_closed) Close(new SocketException((int)SocketError.OperationAborted));
    }

    // ------------------------------------------------------------------ owner: readiness and softnet

    void IReadinessHandler.OnReadiness(ReactorRegistration registration, IoEvents events)
    {
        // The hard interrupt: note it and defer the work to softnet. A write-side edge with no send pending needs
        // nothing: every send tries the syscall first (see the constructor).
        if ((events & (IoEvents.Readable | IoEvents.ReadHangup | IoEvents.Hangup | IoEvents.Error)) != 0) _mayHaveData = true;
        // The peer's FIN (or a reset) often comes in the same edge as the last data: once reported, the socket stays
        // readable (end of stream, or the error) with no further edge, so the flag must never be cleared again.
        if ((events & (IoEvents.ReadHangup | IoEvents.Hangup | IoEvents.Error)) != 0) _readClosed = true;
        if (_receive.Pending || _send.Pending) _cpu.QueueSoftNet(this);
    }

    void INetEndpoint.OnSoftNet()
    {
        if (_closed) return;
        if (_receive.Pending) ContinueReceive();
        if (_send.Pending && !_closed) ContinueSend();
    }

    private void ContinueReceive()
    {
        if (!_mayHaveData) return; // a write-side edge: the receive waits for a readable one
        nint n = Recv(_receiveBuffer.Span, out int errno);
        if (n < 0 && errno == SocketCalls.EAgain) return; // a spurious or write-side edge: keep waiting
        EndReceive();
        _cpu.Trace?.Record(Diagnostics.TraceEvent.IoReceive, _cpu.Id, _cpu.Id, null, n);
        if (n >= 0) _receive.Complete((int)n);
        else _receive.Fail(SocketCalls.Error(errno));
    }

    private void ContinueSend()
    {
        int errno = PushSend();
        if (errno == SocketCalls.EAgain) return;
        _cpu.Trace?.Record(Diagnostics.TraceEvent.IoSend, _cpu.Id, _cpu.Id, null, errno == 0 ? 0 : -1);
        if (errno == 0)
        {
            EndSend();
            _send.Complete(0);
        }
        else FailSend(SocketCalls.Error(errno));
        if (_closeAfterSend) FinishClose();
    }

    /// <summary>The pending send ended and DisposeAsync waits for it: close now (portable backend too).</summary>
    internal bool CloseAfterSend => _closeAfterSend;

    internal void FinishClose()
    {
        Close(new SocketException((int)SocketError.OperationAborted));
        _close.Complete(0);
    }

    /// <summary>Sends as much of the pending data as the kernel takes. Returns 0 when all is sent, EAGAIN when it must wait, or the errno.</summary>
    private int PushSend()
    {
        while (true)
        {
            nint n;
            int errno;
            if (!_sendIsSequence)
            {
                ReadOnlySpan<byte> span = _sendMemory.Span;
                fixed (byte* p = span)
                    n = SocketCalls.Send(_fd, p, (nuint)span.Length, SocketCalls.MsgNoSignal);
                errno = n < 0 ? Marshal.GetLastPInvokeError() : 0;
                if (n >= 0)
                {
                    _cpu.IoCounters.BytesSent += n;
                    _sendMemory = _sendMemory.Slice((int)n);
                    if (_sendMemory.IsEmpty) return 0;
                    continue;
                }
            }
            else
            {
                n = SendGathered(out errno);
                if (n >= 0)
                {
                    _cpu.IoCounters.BytesSent += n;
                    _sendSequence = _sendSequence.Slice(n);
                    if (_sendSequence.IsEmpty)
                    {
                        _sendSequence = default;
                        return 0;
                    }
                    continue;
                }
            }
            if (errno == SocketCalls.EIntr) continue;
            return errno;
        }
    }

    /// <summary>One sendmsg of up to <see cref="SocketCalls.MaxIov"/> segments of the pending sequence; each segment pinned for the call only.</summary>
    private nint SendGathered(out int errno)
    {
        SocketCalls.IoVec* iov = stackalloc SocketCalls.IoVec[SocketCalls.MaxIov];
        PinnedSegments pinned = default; // on the stack: pinning allocates nothing
        try
        {
            int count = 0;
            foreach (ReadOnlyMemory<byte> segment in _sendSequence)
            {
                if (segment.IsEmpty) continue;
                if (count == SocketCalls.MaxIov) break; // the rest goes in the next call
                MemoryHandle handle = segment.Pin();
                pinned.Add(handle);
                iov[count].Base = handle.Pointer;
                iov[count].Length = (nuint)segment.Length;
                count++;
            }
            SocketCalls.MsgHdr message = default;
            message.Iov = iov;
            message.IovLength = (nuint)count;
            nint result = SocketCalls.SendMsg(_fd, &message, SocketCalls.MsgNoSignal);
            errno = result < 0 ? Marshal.GetLastPInvokeError() : 0;
            return result;
        }
        finally
        {
            pinned.Dispose();
        }
    }

    private nint Recv(Span<byte> buffer, out int errno)
    {
        while (true)
        {
            nint n;
            fixed (byte* p = buffer)
                n = SocketCalls.Recv(_fd, p, (nuint)buffer.Length, 0);
            if (n >= 0)
            {
                errno = 0;
                _cpu.IoCounters.BytesReceived += n;
                // A short read took all there was; end of stream (0) stays readable (every later recv returns 0 at once).
                if (n != 0 && n < buffer.Length && !_readClosed) _mayHaveData = false;
                return n;
            }
            errno = Marshal.GetLastPInvokeError();
            if (errno == SocketCalls.EAgain && !_readClosed) _mayHaveData = false;
            if (errno != SocketCalls.EIntr) return n;
        }
    }

    private void ClearSend()
    {
        _sendMemory = default;
        _sendSequence = default;
    }

    // ------------------------------------------------------------------ cancellation

    private static readonly Action<object?> s_cancelReceive = static s => ((CpuConnection)s!).PostToOwner(s_onCancelReceive!);
    private static readonly Action<object?> s_cancelSend = static s => ((CpuConnection)s!).PostToOwner(s_onCancelSend!);
    private static readonly SendOrPostCallback s_onCancelReceive = static s => ((CpuConnection)s!).OnCancelReceive();
    private static readonly SendOrPostCallback s_onCancelSend = static s => ((CpuConnection)s!).OnCancelSend();

    /// <summary>A token fired on some thread: the operation's state is the owner's, so the cancellation goes there.</summary>
    private void PostToOwner(SendOrPostCallback callback) => _cpu.SynchronizationContext.Post(callback, this);

    private void OnCancelReceive()
    {
        if (Cpu.Current != _cpu || !_receive.Pending || !_receiveToken.IsCancellationRequested) return; // completed meanwhile
        FailReceive(new OperationCanceledException(_receiveToken));
    }

    private void OnCancelSend()
    {
        if (Cpu.Current != _cpu || !_send.Pending || !_sendToken.IsCancellationRequested) return;
        FailSend(new OperationCanceledException(_sendToken));
        if (_closeAfterSend) FinishClose();
    }

    /// <summary>The pending receive ends: drop its buffer and its token registration (owner only).</summary>
    private void EndReceive()
    {
        _receiveBuffer = default;
        EndCancellation(ref _receiveCancel, ref _receiveToken);
    }

    /// <summary>The pending send ends: drop its data and its token registration (owner only).</summary>
    private void EndSend()
    {
        ClearSend();
        EndCancellation(ref _sendCancel, ref _sendToken);
    }

    private void FailReceive(Exception error)
    {
        EndReceive();
        _receive.Fail(error);
    }

    private void FailSend(Exception error)
    {
        EndSend();
        _send.Fail(error);
    }

    private static void EndCancellation(ref CancellationTokenRegistration registration, ref CancellationToken token)
    {
        // Unregister, not Dispose: Dispose would wait for a callback running on another thread; ours only posts.
        registration.Unregister();
        registration = default;
        token = default;
    }

    // ------------------------------------------------------------------ shutdown and close

    void INetEndpoint.OnShutdown()
    {
        if (_shutdown) return;
        _shutdown = true;
        ReceiveAbort?.Cancel(); // portable backend: ends a pending receive (its callbacks are ours only)
        if (_receive.Pending) FailReceive(ShutdownError());
        CancellationTokenSource? closing = _closing;
        if (closing != null)
        {
            try
            {
                closing.Cancel();
            }
            catch (AggregateException e)
            {
                _cpu.ReportException(e, Cpu.ExternalSource);
            }
        }
    }

    internal OperationCanceledException ShutdownError()
        => new("The runtime is shutting down: this connection takes no more input. Finish the current reply and return.", _closing?.Token ?? new CancellationToken(true));

    /// <summary>True once the runtime's disposal reached this connection.</summary>
    internal bool IsShutDown => _shutdown;

    void INetEndpoint.Abort()
    {
        if (_closed) return;
        var error = new ObjectDisposedException(nameof(CpuRuntime), "The runtime stopped: its connections were closed.");
        if (_send.Pending) FailSend(error);
        Close(error);
        if (_closeAfterSend) _close.Complete(0);
    }

    private void Close(Exception pendingReceiveError)
    {
        _closed = true;
        if (_receive.Pending) FailReceive(pendingReceiveError);
        if (_reactorMode) _cpu.Reactor.Unregister(_registration); // before the close: the removal names the descriptor by number
        _socket.Dispose();
        ReceiveAbort?.Dispose();
        if (_closing is { } closing)
        {
            try
            {
                closing.Cancel(); // Closing: the connection is gone
            }
            catch (AggregateException e)
            {
                _cpu.ReportException(e, Cpu.ExternalSource);
            }
            closing.Dispose();
        }
        _cpu.RemoveEndpoint(this);
        _cpu.IoCounters.Closed++;
    }

    private void CheckOwner()
    {
        if (Cpu.Current != _cpu) ThrowNotOwner();
    }

    private void ThrowNotOwner()
        => throw new InvalidOperationException($"This connection is owned by CPU {_cpu.Id}: use it only from that CPU (an await there resumes there; from elsewhere, go through cpu.InvokeAsync).");

    private static EndPoint? TryGet(Func<Socket, EndPoint?> get, Socket socket)
    {
        try
        {
            return get(socket);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return null;
        }
    }

    /// <summary>Up to <see cref="SocketCalls.MaxIov"/> pins of one gathering send, released together.</summary>
    private struct PinnedSegments : IDisposable
    {
        private InlinePins _pins;
        private int _count;

        public void Add(MemoryHandle handle) => _pins[_count++] = handle;

        public void Dispose()
        {
            for (int i = 0; i < _count; i++) _pins[i].Dispose();
            _count = 0;
        }
    }

    [System.Runtime.CompilerServices.InlineArray(SocketCalls.MaxIov)]
    private struct InlinePins
    {
        private MemoryHandle _element;
    }
}
