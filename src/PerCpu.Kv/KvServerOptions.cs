using System.Net;
using Microsoft.Extensions.Logging;

namespace PerCpu.Kv;

/// <summary>When an append-only-file write is acknowledged (Redis's <c>appendfsync</c>).</summary>
public enum AppendFsync
{
    /// <summary>After the shard's log was fsynced (group commit: one fsync covers a batch).</summary>
    Always,

    /// <summary>At once; the log is fsynced about once a second.</summary>
    EverySec,

    /// <summary>At once; the operating system decides when the log reaches the disk.</summary>
    No,
}

/// <summary>The socket layer the server listens with.</summary>
public enum KvTransport
{
    /// <summary>PerCpu's own sockets: each CPU's epoll reactor, connections owned and completed on their CPU.</summary>
    PerCpu,

    /// <summary>.NET's <c>System.Net.Sockets</c>: accepted on the thread pool, completions posted to the owning CPU.</summary>
    Socket,
}

/// <summary>How a connection's commands reach a shard on another CPU.</summary>
public enum CrossShardCalls
{
    /// <summary><see cref="Cpu.InvokeAsync{T}(Func{T}, CancellationToken)"/>: a pooled call whose result resumes the connection on its CPU.</summary>
    InvokeAsync,

    /// <summary>A <see cref="Cpu.Send{T}(Action{T, long}, T, long)"/> to the shard and a Send back with the reply; the last reply resumes the connection inside that IPI.</summary>
    SendReply,
}

/// <summary>Settings of a <see cref="KvServer"/>.</summary>
public sealed class KvServerOptions
{
    /// <summary>The address to listen on. Defaults to <see cref="IPAddress.Loopback"/> (as Redis's shipped configuration).</summary>
    public IPAddress Address { get; set; } = IPAddress.Loopback;

    /// <summary>The TCP port; 0 picks a free one (read it back from <see cref="KvServer.LocalEndPoint"/>). Defaults to 6379.</summary>
    public int Port { get; set; } = 6379;

    /// <summary>CPUs, and so shards. Defaults to <see cref="Environment.ProcessorCount"/>.</summary>
    public int Cpus { get; set; } = Environment.ProcessorCount;

    /// <summary>Whether the CPU threads are pinned to cores. Defaults to true.</summary>
    public bool PinThreads { get; set; } = true;

    /// <summary>The directory of the append-only files (one per shard); null keeps everything in memory only. Defaults to null.</summary>
    public string? Directory { get; set; }

    /// <summary>When writes are acknowledged relative to the log's fsync. Defaults to <see cref="Kv.AppendFsync.EverySec"/>.</summary>
    public AppendFsync AppendFsync { get; set; } = AppendFsync.EverySec;

    /// <summary>
    /// A shard's append-only file is rewritten as a snapshot of the shard once it is at least this big and twice its
    /// size after the last rewrite (Redis's auto-aof-rewrite-min-size and -percentage 100). Defaults to 64 MB.
    /// </summary>
    public long AofRewriteMinSize { get; set; } = 64L * 1024 * 1024;

    /// <summary>The most clients connected at once; one more is told "-ERR max number of clients reached" and closed. Defaults to 10000.</summary>
    public int MaxClients { get; set; } = 10000;

    /// <summary>The socket layer. Defaults to <see cref="KvTransport.PerCpu"/>.</summary>
    public KvTransport Transport { get; set; } = KvTransport.PerCpu;

    /// <summary>How commands reach the shards of other CPUs. Defaults to <see cref="Kv.CrossShardCalls.InvokeAsync"/>.</summary>
    public CrossShardCalls CrossShardCalls { get; set; } = CrossShardCalls.InvokeAsync;

    /// <summary>Where the server logs. Defaults to none.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>The clock of expiries (a test may move it). Defaults to <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Checks the settings; the exception says which one to change.</summary>
    /// <exception cref="ArgumentException">A setting is out of range.</exception>
    public void Validate()
    {
        if (Port is < 0 or > 65535) throw new ArgumentException($"Port {Port} is not a TCP port: use 0 to 65535 (0 picks a free port).", nameof(Port));
        if (Cpus < 1) throw new ArgumentException($"Cpus must be at least 1 (was {Cpus}).", nameof(Cpus));
        if (MaxClients < 1) throw new ArgumentException($"MaxClients must be at least 1 (was {MaxClients}).", nameof(MaxClients));
        ArgumentNullException.ThrowIfNull(Address);
        ArgumentNullException.ThrowIfNull(TimeProvider);
    }
}
