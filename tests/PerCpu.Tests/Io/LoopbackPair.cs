using System.Net;
using System.Net.Sockets;

namespace PerCpu.Tests.Io;

/// <summary>
/// Connected TCP sockets on 127.0.0.1, non-blocking, used only through the synchronous calls (never .NET's socket
/// engine): <see cref="Server"/> is the side a reactor watches, <see cref="Client"/> the peer.
/// </summary>
internal sealed class LoopbackPair : IDisposable
{
    public readonly Socket Server;
    public readonly Socket Client;

    private LoopbackPair(Socket server, Socket client)
    {
        Server = server;
        Client = client;
    }

    public static LoopbackPair Create(Socket? listener = null)
    {
        bool ownListener = listener is null;
        listener ??= Listen(1);
        try
        {
            var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            client.Connect(listener.LocalEndPoint!);
            Socket server = listener.Accept();
            server.NoDelay = true;
            server.Blocking = false;
            client.Blocking = false;
            return new LoopbackPair(server, client);
        }
        finally
        {
            if (ownListener) listener.Dispose();
        }
    }

    public static Socket Listen(int backlog)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(backlog);
        return listener;
    }

    /// <summary>Writes <paramref name="count"/> bytes from the peer (a loopback socket buffer takes them at once).</summary>
    public void PeerSend(int count = 1)
    {
        Span<byte> data = stackalloc byte[count];
        data.Fill(42);
        int sent = Client.Send(data, SocketFlags.None, out SocketError error);
        Assert.Equal(SocketError.Success, error);
        Assert.Equal(count, sent);
    }

    /// <summary>Blocks (poll(2), hang-bounded) until the server side has at least <paramref name="bytes"/> to read.</summary>
    public void WaitReadable(int bytes = 1)
    {
        var bound = System.Diagnostics.Stopwatch.StartNew();
        while (Server.Available < bytes)
        {
            // Server.Poll blocks in poll(2) until readable; once it is, wait for the rest without a sleep.
            if (Server.Available == 0) Server.Poll(TestUtil.Hang, SelectMode.SelectRead);
            else Thread.Yield();
            if (bound.Elapsed > TestUtil.Hang) throw new Xunit.Sdk.XunitException($"Hang detector: {bytes} bytes never arrived on loopback");
        }
    }

    /// <summary>Reads until WouldBlock (what an edge-triggered handler must do); returns the bytes read.</summary>
    public int DrainServer()
    {
        Span<byte> buffer = stackalloc byte[4096];
        int total = 0;
        while (true)
        {
            int n = Server.Receive(buffer, SocketFlags.None, out SocketError error);
            if (error == SocketError.WouldBlock) return total;
            Assert.Equal(SocketError.Success, error);
            if (n == 0) return total;
            total += n;
        }
    }

    public void Dispose()
    {
        Client.Dispose();
        Server.Dispose();
    }
}
