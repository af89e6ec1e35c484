using System.Net;
using System.Net.Sockets;

namespace PerCpu.Kv.Transport;

/// <summary>
/// The interim adapter: a connected .NET <see cref="Socket"/> whose loop runs on a CPU. Its awaits on
/// <see cref="Socket.ReceiveAsync(Memory{byte}, SocketFlags, CancellationToken)"/> complete on .NET's socket engine
/// thread and resume on the CPU through the CPU's <see cref="SynchronizationContext"/> (captured by the await). The
/// PerCpu socket layer (issue 12) replaces it with a CpuConnection adapter on the CPU's own epoll reactor.
/// </summary>
internal sealed class SocketTransport(Socket socket, Cpu cpu) : IKvTransport
{
    /// <inheritdoc/>
    public Cpu Cpu { get; } = cpu;

    /// <inheritdoc/>
    public EndPoint? RemoteEndPoint { get; } = socket.RemoteEndPoint;

    /// <inheritdoc/>
    public ValueTask<int> ReceiveAsync(Memory<byte> buffer) => socket.ReceiveAsync(buffer, SocketFlags.None);

    /// <inheritdoc/>
    public ValueTask SendAsync(ReadOnlyMemory<byte> data)
    {
        // Not an async method: the usual send completes at once, and an async wrapper would box its state per call.
        ValueTask<int> send = socket.SendAsync(data, SocketFlags.None);
        if (send.IsCompletedSuccessfully && send.Result == data.Length) return default;
        return SendRestAsync(send, data);
    }

    private async ValueTask SendRestAsync(ValueTask<int> pending, ReadOnlyMemory<byte> data)
    {
        data = data.Slice(await pending);
        while (data.Length > 0) data = data.Slice(await socket.SendAsync(data, SocketFlags.None));
    }

    /// <inheritdoc/>
    public bool GatheringSend => false;

    /// <inheritdoc/>
    public async ValueTask SendAsync(System.Buffers.ReadOnlySequence<byte> data)
    {
        // Socket's gathering overload takes a list of segments (an allocation per send): the server copies instead.
        foreach (ReadOnlyMemory<byte> segment in data) await SendAsync(segment);
    }

    /// <inheritdoc/>
    public void Abort()
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // already closed
        }
    }

    /// <inheritdoc/>
    public ValueTask DisposeAsync()
    {
        socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
