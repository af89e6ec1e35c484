using System.Net;
using System.Net.Sockets;
using PerCpu.Net;

namespace PerCpu.Tests.Net;

/// <summary>Shared pieces of the socket tests: an echo handler that checks where it runs, and loopback clients.</summary>
internal static class NetTestUtil
{
    public static readonly IPEndPoint AnyLoopback = new(IPAddress.Loopback, 0);

    /// <summary>Counts what the echo handlers saw; every field is Interlocked.</summary>
    public sealed class EchoStats
    {
        public long Bytes;
        public long WrongCpu;
        public long Connections;
        public long[] PerCpu = new long[64];
    }

    /// <summary>Echoes until end of stream; after every await checks that it still runs on the connection's CPU.</summary>
    public static Func<CpuConnection, ValueTask> Echo(EchoStats stats, int bufferSize = 4096) => async connection =>
    {
        Interlocked.Increment(ref stats.Connections);
        Interlocked.Increment(ref stats.PerCpu[connection.Cpu.Id]);
        var buffer = new byte[bufferSize];
        while (true)
        {
            int n = await connection.ReceiveAsync(buffer);
            if (Cpu.Current != connection.Cpu) Interlocked.Increment(ref stats.WrongCpu);
            if (n == 0) return;
            await connection.SendAsync(buffer.AsMemory(0, n));
            if (Cpu.Current != connection.Cpu) Interlocked.Increment(ref stats.WrongCpu);
            Interlocked.Add(ref stats.Bytes, n);
        }
    };

    public static async Task<Socket> ConnectAsync(IPEndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endpoint);
        return socket;
    }

    /// <summary>Reads exactly <paramref name="buffer"/>'s length, or throws if the stream ends first.</summary>
    public static async Task ReadExactlyAsync(Socket socket, Memory<byte> buffer, Action<int>? progress = null)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = await socket.ReceiveAsync(buffer[got..], SocketFlags.None);
            if (n == 0) throw new EndOfStreamException($"The server closed after {got} of {buffer.Length} bytes.");
            got += n;
            progress?.Invoke(n);
        }
    }

    /// <summary>Reads until the peer closes; returns the bytes read.</summary>
    public static async Task<long> ReadToEndAsync(Socket socket, Action<int>? progress = null)
    {
        var buffer = new byte[65536];
        long total = 0;
        while (true)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None);
            if (n == 0) return total;
            total += n;
            progress?.Invoke(n);
        }
    }

    public static byte Pattern(int connection, long offset) => (byte)(connection * 31 + offset * 7 + (offset >> 8));
}
