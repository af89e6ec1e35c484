using System.Net;
using System.Net.Sockets;
using PerCpu.Net;

namespace PerCpu.Kv.Transport;

/// <summary>
/// The server on PerCpu's own sockets (issue 12): a <see cref="CpuConnection"/> is owned by the CPU that accepted it,
/// its receives and sends complete on that CPU from the CPU's epoll reactor (no thread pool, no posting), so a
/// request costs no thread hop before it is parsed.
/// </summary>
internal sealed class CpuConnectionTransport : IKvTransport
{
    private readonly CpuConnection _connection;
    private readonly Action _abort;

    /// <summary>Adapts <paramref name="connection"/>.</summary>
    public CpuConnectionTransport(CpuConnection connection)
    {
        _connection = connection;
        _abort = Shutdown;
    }

    /// <inheritdoc/>
    public Cpu Cpu => _connection.Cpu;

    /// <inheritdoc/>
    public EndPoint? RemoteEndPoint => _connection.RemoteEndPoint;

    /// <inheritdoc/>
    public ValueTask<int> ReceiveAsync(Memory<byte> buffer) => _connection.ReceiveAsync(buffer);

    /// <inheritdoc/>
    public ValueTask SendAsync(ReadOnlyMemory<byte> data) => _connection.SendAsync(data);

    /// <inheritdoc/>
    public bool GatheringSend => true;

    /// <inheritdoc/>
    public ValueTask SendAsync(System.Buffers.ReadOnlySequence<byte> data) => _connection.SendAsync(data);

    /// <inheritdoc/>
    public void Abort()
    {
        // A CpuConnection is touched only on its CPU: shut it down there; the pending receive then sees end of stream.
        try
        {
            _connection.Cpu.Post(_abort);
        }
        catch (ObjectDisposedException)
        {
            // the runtime is stopping: its own shutdown ends the receive
        }
    }

    private void Shutdown()
    {
        try
        {
            _connection.Shutdown(SocketShutdown.Both);
        }
        catch (ObjectDisposedException)
        {
            // closed already
        }
    }

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => _connection.DisposeAsync();

    /// <summary>Listens with <see cref="CpuRuntime.ListenTcp"/>: each connection is admitted, then run on its CPU.</summary>
    public static IKvListener Listen(KvServer server, IPEndPoint endPoint)
        => new Listener(server.Runtime.ListenTcp(endPoint, server.HandleCpuConnection));

    /// <summary>The server's accept handler (on the connection's CPU): admit, or refuse with Redis's words.</summary>
    internal static ValueTask Handle(KvServer server, CpuConnection connection)
    {
        if (!server.TryAdmit(connection.RemoteEndPoint)) return connection.SendAsync(s_maxClientsReached);
        return new ValueTask(server.RunHere(new CpuConnectionTransport(connection)));
    }

    private static readonly byte[] s_maxClientsReached = KvServer.MaxClientsReached.ToArray();

    private sealed class Listener(CpuListener listener) : IKvListener
    {
        public IPEndPoint LocalEndPoint => listener.LocalEndPoint;

        public ValueTask DisposeAsync() => listener.DisposeAsync();
    }
}
