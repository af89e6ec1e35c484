using System.Net;
using System.Net.Sockets;

namespace PerCpu.Kv.Transport;

/// <summary>
/// The interim listener: a .NET <see cref="Socket"/> accept loop on the thread pool that deals each admitted socket
/// to a CPU (round robin), where its connection runs on a <see cref="SocketTransport"/>. The PerCpu socket layer's
/// listener (issue 12) replaces it: its accept handler runs on the connection's CPU and calls
/// <see cref="KvServer"/>'s TryAdmit, then RunHere with an adapter of its connection.
/// </summary>
internal sealed class SocketListener : IKvListener
{
    private readonly KvServer _server;
    private readonly Socket _socket;
    private Task _loop = Task.CompletedTask;
    private volatile bool _stopping;

    private SocketListener(KvServer server, Socket socket)
    {
        _server = server;
        _socket = socket;
        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
    }

    /// <summary>The bound address.</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Binds, listens and starts accepting.</summary>
    /// <exception cref="SocketException">The address cannot be bound (the port is in use: pick another).</exception>
    public static SocketListener Start(KvServer server, IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(endPoint);
            socket.Listen(4096);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var listener = new SocketListener(server, socket);
        listener._loop = Task.Run(listener.AcceptLoopAsync);
        return listener;
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping)
        {
            Socket socket;
            try
            {
                socket = await _socket.AcceptAsync();
            }
            catch (Exception e) when (e is ObjectDisposedException || (e is SocketException && _stopping))
            {
                break;
            }
            catch (SocketException e)
            {
                // EMFILE and the like: the listener goes on, the client is lost.
                _server.Log.AcceptFailed(e);
                continue;
            }
            if (!_server.TryAdmit(socket.RemoteEndPoint))
            {
                Refuse(socket);
                continue;
            }
            socket.NoDelay = true;
            _server.Launch(new SocketTransport(socket, _server.NextCpu()));
        }
    }

    private static void Refuse(Socket socket)
    {
        try
        {
            socket.Send(KvServer.MaxClientsReached);
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // the client is gone already
        }
        socket.Dispose();
    }

    /// <summary>Stops accepting and waits for the loop to end.</summary>
    public async ValueTask DisposeAsync()
    {
        _stopping = true;
        _socket.Dispose();
        await _loop.ConfigureAwait(false);
    }
}
