using System.Buffers;
using System.Net;
using System.Net.Sockets;

namespace PerCpu.Net;

/// <summary>
/// The portable backend of CPU-owned sockets, where there is no epoll reactor (or with the
/// <see cref="CpuRuntimeOptions.SocketBackend"/> test hook): .NET's asynchronous <see cref="Socket"/> calls. Their
/// completions run on the thread pool; each call here is made on the owning CPU, so its <c>await</c> captured the CPU's
/// <see cref="SynchronizationContext"/> and the continuation is posted back to the CPU. The API and its guarantees
/// are the reactor's (every completion on the owning CPU, sends complete when the kernel took the bytes, nothing lost
/// at shutdown); the cost is a thread-pool hop and a post per operation, and a state machine per operation that does
/// not complete at once.
/// </summary>
internal static class SocketBackend
{
    public static ValueTask<int> ReceiveAsync(CpuConnection connection, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        CancellationToken abort = connection.ReceiveAbort!.Token;
        if (!cancellationToken.CanBeCanceled) return ReceiveCountedAsync(connection, buffer, abort, null);
        var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, abort);
        return ReceiveCountedAsync(connection, buffer, linked.Token, linked);
    }

    private static async ValueTask<int> ReceiveCountedAsync(CpuConnection connection, Memory<byte> buffer, CancellationToken token, CancellationTokenSource? linked)
    {
        try
        {
            int n = await connection.Socket.ReceiveAsync(buffer, SocketFlags.None, token);
            connection.Cpu.IoCounters.BytesReceived += n;
            return n;
        }
        catch (OperationCanceledException) when (connection.IsShutDown)
        {
            throw connection.ShutdownError();
        }
        finally
        {
            linked?.Dispose();
        }
    }

    public static async ValueTask SendAsync(CpuConnection connection, ReadOnlyMemory<byte> data, ReadOnlySequence<byte> sequence, bool isSequence, CancellationToken cancellationToken)
    {
        connection.SocketSendPending = true;
        try
        {
            if (!isSequence) await SendAllAsync(connection, data, cancellationToken);
            else
                foreach (ReadOnlyMemory<byte> segment in sequence)
                    await SendAllAsync(connection, segment, cancellationToken);
        }
        finally
        {
            connection.SocketSendPending = false;
            if (connection.CloseAfterSend) connection.FinishClose(); // DisposeAsync waited for this send
        }
    }

    private static async ValueTask SendAllAsync(CpuConnection connection, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (!data.IsEmpty)
        {
            int n = await connection.Socket.SendAsync(data, SocketFlags.None, cancellationToken);
            connection.Cpu.IoCounters.BytesSent += n;
            data = data[n..];
        }
    }

    /// <summary>On the owning CPU: connects, and returns the connection on that CPU.</summary>
    public static async ValueTask<CpuConnection> ConnectAsync(Cpu cpu, IPEndPoint endpoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint, cancellationToken);
            return cpu.Connected(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>A listening socket's accept loop, started on its CPU: each accepted socket is dealt from there, as the reactor's softnet does.</summary>
    public static async Task AcceptLoopAsync(ListenerPart part, Socket listening)
    {
        while (true)
        {
            Socket accepted;
            try
            {
                accepted = await listening.AcceptAsync();
            }
            catch (Exception e) when (e is ObjectDisposedException or SocketException)
            {
                return; // the listener stopped
            }
            if (Cpu.Current != part.Cpu)
            {
                accepted.Dispose(); // resumed after the runtime stopped (posts then run on the thread pool)
                return;
            }
            part.Deal(accepted);
        }
    }
}
