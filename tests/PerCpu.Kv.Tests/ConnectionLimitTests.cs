using System.Net;
using System.Net.Sockets;
using Xunit.Abstractions;

namespace PerCpu.Kv.Tests;

/// <summary>10 000 idle connections are held, and the next one is refused politely (the server in its own process: a process may hold 20 000 descriptors here).</summary>
public sealed class ConnectionLimitTests(ITestOutputHelper output)
{
    [Fact]
    public async Task TenThousandIdleConnections_Held_TheNextRefused()
    {
        const int clients = 10_000;
        var server = KvProcess.Start(output, out int port, "--maxclients", clients.ToString());
        var endPoint = new IPEndPoint(IPAddress.Loopback, port);
        var sockets = new List<Socket>(clients);
        try
        {
            byte[] ping = "*1\r\n$4\r\nPING\r\n"u8.ToArray();
            byte[] reply = new byte[7];
            for (int i = 0; i < clients; i++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 60_000 };
                await s.ConnectAsync(endPoint);
                sockets.Add(s);
                // Each one answered: it was accepted and has a loop on a CPU.
                s.Send(ping);
                Assert.Equal(7, ReceiveExactly(s, reply));
                Assert.Equal("+PONG\r\n", System.Text.Encoding.ASCII.GetString(reply));
            }
            using (var extra = new RespClient(endPoint))
            {
                Assert.Equal("-ERR max number of clients reached\r\n", extra.ReadReply());
                Assert.True(extra.IsClosedByServer());
            }
            // The idle ones are still served (the first and last of them, and every hundredth).
            for (int i = 0; i < clients; i += i == clients - 2 ? 1 : 100)
            {
                sockets[i].Send(ping);
                Assert.Equal(7, ReceiveExactly(sockets[i], reply));
            }
            sockets[0].Send(RespClient.Encode("INFO", "clients"));
            var buffer = new byte[4096];
            int n = sockets[0].Receive(buffer);
            Assert.Contains($"connected_clients:{clients}", System.Text.Encoding.ASCII.GetString(buffer, 0, n));
        }
        finally
        {
            foreach (Socket s in sockets) s.Dispose();
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }

    private static int ReceiveExactly(Socket s, byte[] buffer)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = s.Receive(buffer, got, buffer.Length - got, SocketFlags.None);
            if (n == 0) break;
            got += n;
        }
        return got;
    }
}
