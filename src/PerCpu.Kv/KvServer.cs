using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PerCpu.Kv.Server;
using PerCpu.Kv.Store;
using PerCpu.Kv.Transport;

namespace PerCpu.Kv;

/// <summary>
/// percpu-kv: a Redis-protocol (RESP2) key-value server on a <see cref="CpuRuntime"/>. Each CPU owns one shard of the
/// key space (key k on CPU hash(k) mod N) and the connections it accepted; a command for another CPU's shard crosses
/// through the IPI rings and its reply comes back in order with the connection's other replies.
/// Start one with <see cref="StartAsync"/>; stop it with <see cref="DisposeAsync"/>.
/// </summary>
public sealed class KvServer : IAsyncDisposable
{
    /// <summary>The Redis version reported to clients (the command set and replies follow Redis 7.0).</summary>
    public const string RedisVersion = "7.0.15";

    private readonly KvServerOptions _options;
    private readonly CpuRuntime _runtime;
    private IKvListener? _listener;
    private readonly ConcurrentDictionary<long, KvConnection> _connections = new();
    private readonly long[] _commands; // per CPU, 16 longs apart (own cache line); owner writes, INFO reads
    private readonly long _started = Stopwatch.GetTimestamp();
    private long _nextId;
    private int _nextCpu;
    private int _clients;
    private long _totalConnections;
    private long _rejected;
    private int _disposed;
    private TaskCompletionSource? _drained;

    private KvServer(KvServerOptions options, CpuRuntime runtime, ILogger logger)
    {
        _options = options;
        _runtime = runtime;
        Log = new KvLog(logger);
        Shards = new Shard[runtime.CpuCount];
        for (int i = 0; i < Shards.Length; i++) Shards[i] = new Shard(i, runtime[i], options.TimeProvider);
        _commands = new long[runtime.CpuCount * 16];
    }

    /// <summary>Where the server listens (the bound port when <see cref="KvServerOptions.Port"/> was 0).</summary>
    public IPEndPoint LocalEndPoint => _listener?.LocalEndPoint ?? new IPEndPoint(_options.Address, _options.Port);

    /// <summary>The runtime the server runs on (its statistics appear in INFO's percpu section).</summary>
    public CpuRuntime Runtime => _runtime;

    /// <summary>Clients connected now.</summary>
    public int ConnectedClients => Volatile.Read(ref _clients);

    internal Shard[] Shards { get; }

    internal CrossShardCalls CrossShardCalls => _options.CrossShardCalls;

    /// <summary>Append-only files are on with appendfsync always.</summary>
    internal bool AlwaysFsync => _options.Directory != null && _options.AppendFsync == AppendFsync.Always;

    internal KvLog Log { get; }

    /// <summary>
    /// Starts a runtime of <see cref="KvServerOptions.Cpus"/> CPUs, one shard on each, and listens.
    /// </summary>
    /// <param name="options">The settings; null takes the defaults.</param>
    /// <returns>The running server.</returns>
    /// <exception cref="ArgumentException">A setting is out of range.</exception>
    /// <exception cref="SocketException">The address cannot be bound (the port is in use: pick another with --port).</exception>
    public static async Task<KvServer> StartAsync(KvServerOptions? options = null)
    {
        options ??= new KvServerOptions();
        options.Validate();
        ILogger logger = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger("PerCpu.Kv");
        CpuRuntime runtime = CpuRuntime.Start(new CpuRuntimeOptions
        {
            CpuCount = options.Cpus,
            PinThreads = options.PinThreads,
            ThreadName = "percpu-kv",
        });
        var server = new KvServer(options, runtime, logger);
        runtime.UnhandledException += (_, e) => server.Log.CpuException(e.Exception, e.Cpu.Id);
        runtime.Warning += (_, e) => server.Log.RuntimeWarning(e.Message);
        try
        {
            if (options.Directory != null) await server.OpenLogsAsync(options.Directory);
            foreach (Shard shard in server.Shards) await shard.Cpu.InvokeAsync(shard.Start);
            // The transport seam: this is the one line that picks the socket layer.
            var endPoint = new IPEndPoint(options.Address, options.Port);
            server._listener = options.Transport == KvTransport.PerCpu
                ? CpuConnectionTransport.Listen(server, endPoint)
                : SocketListener.Start(server, endPoint);
        }
        catch
        {
            await runtime.DisposeAsync();
            throw;
        }
        server.Log.Listening(RedisVersion, server.LocalEndPoint, runtime.CpuCount, options.MaxClients);
        return server;
    }

    /// <summary>The log file of shard <paramref name="id"/>.</summary>
    internal static string LogPath(string directory, int id) => Path.Combine(directory, $"shard-{id}.aof");

    /// <summary>
    /// Replays each shard's append-only file into its shard (on the shard's CPU; a torn last record is cut off and
    /// reported), then opens the files for appending with a Bio soft interrupt per CPU for the group commits.
    /// </summary>
    private async Task OpenLogsAsync(string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        int shards = Shards.Length;
        foreach (string file in System.IO.Directory.EnumerateFiles(directory, "shard-*.aof"))
        {
            string name = Path.GetFileNameWithoutExtension(file);
            if (int.TryParse(name.AsSpan("shard-".Length), out int id) && id >= shards && new FileInfo(file).Length > 0)
            {
                throw new InvalidOperationException(
                    $"{directory} holds {name}.aof, written by a server with more than {shards} CPUs: a key's shard depends on the number of CPUs, so start with the same --cpus as the run that wrote the files (or use another --dir).");
            }
        }

        SoftInterrupt bio = _runtime.Establish(SoftLevel.Bio, static state =>
        {
            var server = (KvServer)state!;
            return server.Shards[Cpu.Current!.Id].FlushLogAsync();
        }, this);
        foreach (Shard shard in Shards)
        {
            string path = LogPath(directory, shard.Id);
            byte[] data = AppendOnlyFile.ReadForReplay(path, out int length, out long torn);
            if (torn > 0) Log.TornRecord(shard.Id, torn, path);
            long records = 0;
            var position = new StrongBox<int>(0);
            while (position.Value < length)
            {
                int chunk = await shard.Cpu.InvokeAsync(() => shard.Replay(data, length, ref position.Value));
                if (chunk == 0) break;
                records += chunk;
            }
            if (records > 0) Log.Replayed(shard.Id, records, path);
            var aof = new AppendOnlyFile(path, _options.AppendFsync, shard.WriteSnapshot, _options.AofRewriteMinSize, Log.LogFailed);
            await shard.Cpu.InvokeAsync(() => shard.AttachLog(aof, bio));
        }
    }

    /// <summary>Redis's refusal beyond maxclients; the client reads it as the reply to its first command.</summary>
    internal static ReadOnlySpan<byte> MaxClientsReached => "-ERR max number of clients reached\r\n"u8;

    /// <summary>
    /// Counts a new client in, or — beyond <see cref="KvServerOptions.MaxClients"/>, or while stopping — refuses it
    /// (the transport then sends <see cref="MaxClientsReached"/> and closes). Any thread.
    /// </summary>
    internal bool TryAdmit(EndPoint? peer)
    {
        Interlocked.Increment(ref _totalConnections);
        if (Interlocked.Increment(ref _clients) <= _options.MaxClients && Volatile.Read(ref _disposed) == 0) return true;
        Interlocked.Decrement(ref _clients);
        Interlocked.Increment(ref _rejected);
        Log.Refused(peer?.ToString() ?? "?", _options.MaxClients);
        return false;
    }

    /// <summary>The accept handler of the PerCpu socket layer (bound once: no allocation per connection for it).</summary>
    internal Func<PerCpu.Net.CpuConnection, ValueTask> HandleCpuConnection => _handleCpuConnection ??= c => CpuConnectionTransport.Handle(this, c);

    private Func<PerCpu.Net.CpuConnection, ValueTask>? _handleCpuConnection;

    /// <summary>The CPU for the next connection: round robin (a connection is then owned by that CPU for life).</summary>
    internal Cpu NextCpu() => _runtime[(int)((uint)Interlocked.Increment(ref _nextCpu) % (uint)_runtime.CpuCount)];

    /// <summary>Runs an admitted connection on its transport's CPU (posted there). Any thread.</summary>
    internal void Launch(IKvTransport transport)
    {
        KvConnection connection = Register(transport);
        try
        {
            transport.Cpu.Post(connection.Start);
        }
        catch (ObjectDisposedException)
        {
            _connections.TryRemove(connection.Id, out _);
            Interlocked.Decrement(ref _clients);
            _ = transport.DisposeAsync();
        }
    }

    /// <summary>
    /// Runs an admitted connection on the calling CPU, which must be the transport's (for a socket layer whose
    /// accept handler already runs on the connection's CPU); completes when the connection has closed.
    /// </summary>
    internal Task RunHere(IKvTransport transport)
    {
        if (Cpu.Current != transport.Cpu) throw new InvalidOperationException($"RunHere is called on the connection's CPU ({transport.Cpu}); post Launch from elsewhere.");
        return Register(transport).RunAsync();
    }

    private KvConnection Register(IKvTransport transport)
    {
        var connection = new KvConnection(this, transport, Interlocked.Increment(ref _nextId));
        _connections[connection.Id] = connection;
        return connection;
    }

    /// <summary>A connection has closed (on its CPU).</summary>
    internal void Closed(KvConnection connection)
    {
        _connections.TryRemove(connection.Id, out _);
        if (Interlocked.Decrement(ref _clients) == 0 && Volatile.Read(ref _disposed) != 0) _drained?.TrySetResult();
    }

    /// <summary>Counts commands run by the connections of <paramref name="cpu"/> (called on that CPU).</summary>
    internal void CountCommands(int cpu, int count) => _commands[cpu * 16] += count;

    /// <summary>Times a connection's loop resumed on another thread than its CPU (a transport bug; tests assert 0).</summary>
    internal long OffCpuResumes => Interlocked.Read(ref _offCpuResumes);

    private long _offCpuResumes;

    internal void CountOffCpuResume() => Interlocked.Increment(ref _offCpuResumes);

    /// <summary>Batches sent as a gathering send over the shards' buffers (large replies not copied).</summary>
    internal long GatheredSends => Interlocked.Read(ref _gatheredSends);

    private long _gatheredSends;

    internal void CountGatheredSend() => Interlocked.Increment(ref _gatheredSends);

    internal string ClientList()
    {
        var sb = new StringBuilder();
        foreach (KvConnection c in _connections.Values) sb.Append(c.ClientLine()).Append('\n');
        return sb.ToString();
    }

    internal (string Name, string Value)[] ConfigValues() =>
    [
        ("save", ""),
        ("appendonly", _options.Directory != null ? "yes" : "no"),
        ("appendfsync", _options.AppendFsync.ToString().ToLowerInvariant()),
        ("maxclients", _options.MaxClients.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        ("databases", "1"),
        ("port", LocalEndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        ("bind", _options.Address.ToString()),
        ("dir", _options.Directory ?? Environment.CurrentDirectory),
        ("maxmemory", "0"),
        ("maxmemory-policy", "noeviction"),
        ("timeout", "0"),
        ("proto-max-bulk-len", Protocol.RespParser.MaxBulkLength.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        ("hz", "10"),
    ];

    /// <summary>INFO's text. <paramref name="sections"/> empty (or "all", "everything", "default") means all of them.</summary>
    internal string Info(List<string> sections, long keys, long expires, long hits, long misses, long expired)
    {
        bool all = sections.Count == 0 || sections.Contains("all") || sections.Contains("everything") || sections.Contains("default");
        bool Want(string s) => all || sections.Contains(s);
        var sb = new StringBuilder();
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        if (Want("server"))
        {
            sb.Append("# Server\r\n")
              .Append("redis_version:").Append(RedisVersion).Append("\r\n")
              .Append("redis_mode:standalone\r\n")
              .Append("os:").Append(System.Runtime.InteropServices.RuntimeInformation.OSDescription).Append("\r\n")
              .Append("arch_bits:64\r\n")
              .Append("process_id:").Append(Environment.ProcessId.ToString(inv)).Append("\r\n")
              .Append("tcp_port:").Append(LocalEndPoint.Port.ToString(inv)).Append("\r\n")
              .Append("uptime_in_seconds:").Append(((long)Stopwatch.GetElapsedTime(_started).TotalSeconds).ToString(inv)).Append("\r\n")
              .Append("server_name:percpu-kv\r\n")
              .Append("\r\n");
        }
        if (Want("clients"))
        {
            sb.Append("# Clients\r\n")
              .Append("connected_clients:").Append(ConnectedClients.ToString(inv)).Append("\r\n")
              .Append("maxclients:").Append(_options.MaxClients.ToString(inv)).Append("\r\n")
              .Append("\r\n");
        }
        if (Want("persistence"))
        {
            sb.Append("# Persistence\r\n")
              .Append("loading:0\r\n")
              .Append("aof_enabled:").Append(_options.Directory != null ? '1' : '0').Append("\r\n")
              .Append("aof_current_size:").Append(Shards.Sum(s => s.LogState.Size).ToString(inv)).Append("\r\n")
              .Append("aof_rewrites:").Append(Shards.Sum(s => s.LogState.Rewrites).ToString(inv)).Append("\r\n")
              .Append("\r\n");
        }
        if (Want("stats"))
        {
            long commands = 0;
            for (int i = 0; i < _runtime.CpuCount; i++) commands += Volatile.Read(ref _commands[i * 16]);
            sb.Append("# Stats\r\n")
              .Append("total_connections_received:").Append(Interlocked.Read(ref _totalConnections).ToString(inv)).Append("\r\n")
              .Append("total_commands_processed:").Append(commands.ToString(inv)).Append("\r\n")
              .Append("rejected_connections:").Append(Interlocked.Read(ref _rejected).ToString(inv)).Append("\r\n")
              .Append("expired_keys:").Append(expired.ToString(inv)).Append("\r\n")
              .Append("keyspace_hits:").Append(hits.ToString(inv)).Append("\r\n")
              .Append("keyspace_misses:").Append(misses.ToString(inv)).Append("\r\n")
              .Append("\r\n");
        }
        if (Want("replication"))
        {
            sb.Append("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
        }
        if (Want("keyspace"))
        {
            sb.Append("# Keyspace\r\n");
            if (keys > 0) sb.Append("db0:keys=").Append(keys.ToString(inv)).Append(",expires=").Append(expires.ToString(inv)).Append(",avg_ttl=0\r\n");
            sb.Append("\r\n");
        }
        if (Want("percpu"))
        {
            CpuStatistics total = _runtime.GetStatistics();
            sb.Append("# Percpu\r\n")
              .Append("cpus:").Append(_runtime.CpuCount.ToString(inv)).Append("\r\n")
              .Append("threads_pinned:").Append(_runtime.ThreadsPinned ? '1' : '0').Append("\r\n");
            AppendStats(sb, "ipi", total, inv);
            for (int i = 0; i < _runtime.CpuCount; i++)
            {
                Cpu cpu = _runtime[i];
                AppendStats(sb, "cpu" + i.ToString(inv), cpu.GetStatistics(), inv);
                sb.Append("cpu").Append(i.ToString(inv)).Append("_keys:").Append(Shards[i].Count.ToString(inv))
                  .Append(",commands_from_connections:").Append(Volatile.Read(ref _commands[i * 16]).ToString(inv))
                  .Append(",pinned_core:").Append(cpu.PinnedCore.ToString(inv)).Append("\r\n");
            }
            foreach (SoftLevel level in Enum.GetValues<SoftLevel>())
            {
                SoftInterruptStatistics s = _runtime.GetSoftInterruptStatistics(level);
                sb.Append("softint_").Append(level.ToString().ToLowerInvariant()).Append(":count=").Append(s.Count.ToString(inv)).Append(",blocks=").Append(s.Blocks.ToString(inv)).Append(",errors=").Append(s.Errors.ToString(inv)).Append("\r\n");
            }
            sb.Append("\r\n");
        }
        // Redis separates sections with a blank line but does not end with one.
        if (sb.Length >= 2) sb.Length -= 2;
        return sb.ToString();
    }

    private static void AppendStats(StringBuilder sb, string name, CpuStatistics s, IFormatProvider inv)
    {
        sb.Append(name).Append(":sent=").Append(s.Sent.ToString(inv))
          .Append(",received=").Append(s.Received.ToString(inv))
          .Append(",avoided=").Append(s.Avoided.ToString(inv))
          .Append(",fifofull=").Append(s.FifoFull.ToString(inv))
          .Append(",passive=").Append(s.Passive.ToString(inv))
          .Append(",wakes_sent=").Append(s.WakesSent.ToString(inv))
          .Append(",wakes_received=").Append(s.WakesReceived.ToString(inv))
          .Append(",errors=").Append(s.Errors.ToString(inv))
          .Append(",stalls=").Append(s.Stalls.ToString(inv))
          .Append("\r\n");
    }

    /// <summary>
    /// Stops listening, closes every client (replies already computed are sent first only if they were in flight),
    /// waits for their loops to end, stops the shards' timers and stops the runtime.
    /// </summary>
    /// <returns>A task that completes when everything has stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_listener != null) await _listener.DisposeAsync().ConfigureAwait(false);
        Log.ShuttingDown(ConnectedClients);
        foreach (KvConnection c in _connections.Values) c.Abort();
        if (Volatile.Read(ref _clients) != 0) await _drained.Task.ConfigureAwait(false);
        foreach (Shard shard in Shards) await shard.Cpu.InvokeAsync(shard.Stop).ConfigureAwait(false);
        await _runtime.DisposeAsync().ConfigureAwait(false);
        Log.Stopped();
    }
}
