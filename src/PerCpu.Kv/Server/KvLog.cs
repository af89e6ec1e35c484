using Microsoft.Extensions.Logging;

namespace PerCpu.Kv.Server;

/// <summary>The server's log messages (source-generated: no formatting unless the level is on).</summary>
internal sealed partial class KvLog
{
    private readonly ILogger _logger;

    /// <summary>Logs to <paramref name="logger"/>.</summary>
    public KvLog(ILogger logger) => _logger = logger;

    [LoggerMessage(1, LogLevel.Information, "percpu-kv {Version} listening on {EndPoint}: {Cpus} CPUs, one shard each; maxclients {MaxClients}")]
    public partial void Listening(string version, System.Net.EndPoint endPoint, int cpus, int maxClients);

    [LoggerMessage(2, LogLevel.Warning, "Refused a client from {EndPoint}: max number of clients ({MaxClients}) reached")]
    public partial void Refused(string endPoint, int maxClients);

    [LoggerMessage(3, LogLevel.Error, "Connection {Id} ({EndPoint}) failed")]
    public partial void ConnectionFailed(Exception exception, long id, string endPoint);

    [LoggerMessage(4, LogLevel.Information, "Shutting down: closing {Clients} client(s)")]
    public partial void ShuttingDown(int clients);

    [LoggerMessage(5, LogLevel.Information, "Stopped")]
    public partial void Stopped();

    [LoggerMessage(6, LogLevel.Error, "Accept failed; the listener goes on")]
    public partial void AcceptFailed(Exception exception);

    [LoggerMessage(7, LogLevel.Error, "CPU {Cpu}: unhandled exception (the CPU goes on)")]
    public partial void CpuException(Exception exception, int cpu);

    [LoggerMessage(8, LogLevel.Warning, "Runtime warning: {Message}")]
    public partial void RuntimeWarning(string message);

    [LoggerMessage(9, LogLevel.Information, "Shard {Shard}: replayed {Records} record(s) from {Path}")]
    public partial void Replayed(int shard, long records, string path);

    [LoggerMessage(11, LogLevel.Critical, "Append-only file failed; writes are no longer durable")]
    public partial void LogFailed(Exception exception);

    [LoggerMessage(10, LogLevel.Warning, "Shard {Shard}: dropped a torn last record ({Bytes} byte(s)) at the end of {Path}")]
    public partial void TornRecord(int shard, long bytes, string path);
}
