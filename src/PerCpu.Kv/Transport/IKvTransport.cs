using System.Net;

namespace PerCpu.Kv.Transport;

/// <summary>
/// The seam between the server and a socket layer: one accepted connection, owned by one CPU. Every method but
/// <see cref="Abort"/> is called on <see cref="Cpu"/>, and each await resumes there. A connection reads into the
/// buffer it is given and writes one contiguous buffer per batch of replies (the batch is gathered into it first).
/// </summary>
internal interface IKvTransport : IAsyncDisposable
{
    /// <summary>The CPU that owns the connection.</summary>
    Cpu Cpu { get; }

    /// <summary>The peer, for CLIENT LIST and logs.</summary>
    EndPoint? RemoteEndPoint { get; }

    /// <summary>Receives into <paramref name="buffer"/>; 0 when the peer closed. A reset or an abort may throw (<see cref="System.Net.Sockets.SocketException"/>, <see cref="ObjectDisposedException"/>): the connection ends.</summary>
    ValueTask<int> ReceiveAsync(Memory<byte> buffer);

    /// <summary>Sends all of <paramref name="data"/>.</summary>
    ValueTask SendAsync(ReadOnlyMemory<byte> data);

    /// <summary>Whether <see cref="SendAsync(System.Buffers.ReadOnlySequence{byte})"/> is one gathering send (sendmsg) rather than one send per segment.</summary>
    bool GatheringSend { get; }

    /// <summary>Sends every segment of <paramref name="data"/> in order.</summary>
    ValueTask SendAsync(System.Buffers.ReadOnlySequence<byte> data);

    /// <summary>Closes the connection from any thread (shutdown): pending and later receives return 0 or throw.</summary>
    void Abort();
}

/// <summary>A listening socket layer: accepts connections and hands them to the server (its TryAdmit, then Launch or RunHere).</summary>
internal interface IKvListener : IAsyncDisposable
{
    /// <summary>The bound address.</summary>
    IPEndPoint LocalEndPoint { get; }
}
