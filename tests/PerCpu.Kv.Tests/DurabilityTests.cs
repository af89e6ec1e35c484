using System.Diagnostics;
using System.Net;
using System.Text;
using Xunit.Abstractions;

namespace PerCpu.Kv.Tests;

/// <summary>The append-only files: replay after a clean stop, a torn last record, and kill -9 with appendfsync always.</summary>
public sealed class DurabilityTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("percpu-kv-test-").FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // a killed server's files may still be open for a moment; the temp directory is cleaned up anyway
        }
    }

    [Theory]
    [InlineData(AppendFsync.Always)]
    [InlineData(AppendFsync.EverySec)]
    [InlineData(AppendFsync.No)]
    public async Task Restart_ReplaysEveryShardsLog(AppendFsync fsync)
    {
        await using (KvServer server = await ServerFixture.StartAsync(o => { o.Directory = _dir; o.AppendFsync = fsync; }))
        {
            using var c = new RespClient(server.LocalEndPoint);
            for (int i = 0; i < 100; i++) Assert.Equal("+OK\r\n", c.Call("SET", "k" + i, "v" + i));
            Assert.Equal(":2\r\n", c.Call("DEL", "k0", "k1"));
            Assert.Equal(":11\r\n", c.Call("INCRBY", "n", "11"));
            Assert.Equal(":5\r\n", c.Call("APPEND", "k2", "xyz"));
            Assert.Equal(":3\r\n", c.Call("RPUSH", "l", "a", "b", "c"));
            Assert.Equal("$1\r\na\r\n", c.Call("LPOP", "l"));
            Assert.Equal("+OK\r\n", c.Call("SET", "ttl", "v", "EX", "1000"));
            Assert.Equal(":1\r\n", c.Call("EXPIRE", "k3", "2000"));
            Assert.Equal(":1\r\n", c.Call("PERSIST", "k3"));
            Assert.Equal("+OK\r\n", c.Call("SET", "expired", "v", "PXAT", "1"));
            Assert.Equal("+OK\r\n", c.Call("MSET", "m1", "1", "m2", "2"));
        }
        Assert.Equal(2, Directory.GetFiles(_dir, "shard-*.aof").Length);

        await using (KvServer server = await ServerFixture.StartAsync(o => { o.Directory = _dir; o.AppendFsync = fsync; }))
        {
            using var c = new RespClient(server.LocalEndPoint);
            Assert.Equal("$-1\r\n", c.Call("GET", "k0"));
            Assert.Equal("$5\r\nv2xyz\r\n", c.Call("GET", "k2"));
            Assert.Equal("$2\r\nv3\r\n", c.Call("GET", "k3"));
            Assert.Equal(":-1\r\n", c.Call("TTL", "k3"));
            Assert.Equal("$3\r\nv99\r\n", c.Call("GET", "k99"));
            Assert.Equal("$2\r\n11\r\n", c.Call("GET", "n"));
            Assert.Equal("*2\r\n$1\r\nb\r\n$1\r\nc\r\n", c.Call("LRANGE", "l", "0", "-1"));
            long ttl = long.Parse(c.Call("TTL", "ttl").AsSpan(1).TrimEnd("\r\n"));
            Assert.InRange(ttl, 1, 1000);
            Assert.Equal("$-1\r\n", c.Call("GET", "expired"));
            Assert.Equal("*2\r\n$1\r\n1\r\n$1\r\n2\r\n", c.Call("MGET", "m1", "m2"));
            Assert.Equal(":103\r\n", c.Call("DBSIZE")); // k2..k99 (98), n, l, ttl, m1, m2
        }
    }

    [Fact]
    public async Task LogRewrite_KeepsTheFileSmall_AndTheStateWhole()
    {
        const int rounds = 200, keys = 10;
        long logged = 0;
        await using (KvServer server = await ServerFixture.StartAsync(o => { o.Directory = _dir; o.AofRewriteMinSize = 8 * 1024; }))
        {
            using var c = new RespClient(server.LocalEndPoint);
            for (int r = 0; r < rounds; r++)
            {
                for (int k = 0; k < keys; k++)
                {
                    string v = $"value-{r}-{new string('x', 20)}";
                    Assert.Equal("+OK\r\n", c.Call("SET", "rw" + k, v));
                    logged += RespClient.Encode("SET", "rw" + k, v).Length;
                }
                Assert.Equal($":{r + 1}\r\n", c.Call("RPUSH", "rwlist", "item" + r));
            }
            Assert.Contains("aof_rewrites:", c.Call("INFO", "persistence"));
            Assert.DoesNotContain("aof_rewrites:0\r\n", c.Call("INFO", "persistence"));
        }
        long size = Directory.GetFiles(_dir, "shard-*.aof").Sum(f => new FileInfo(f).Length);
        output.WriteLine($"{logged} bytes of SET records written; the two files hold {size} bytes");
        Assert.True(size < logged / 2, $"the logs hold {size} bytes of {logged} written: not rewritten");

        await using (KvServer server = await ServerFixture.StartAsync(o => o.Directory = _dir))
        {
            using var c = new RespClient(server.LocalEndPoint);
            for (int k = 0; k < keys; k++)
            {
                string v = $"value-{rounds - 1}-{new string('x', 20)}";
                Assert.Equal($"${v.Length}\r\n{v}\r\n", c.Call("GET", "rw" + k));
            }
            Assert.Equal($":{rounds}\r\n", c.Call("LLEN", "rwlist"));
            Assert.Equal("*1\r\n$6\r\nitem42\r\n", c.Call("LRANGE", "rwlist", "42", "42"));
        }
    }

    /// <summary>A clock the test moves by hand.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long _ms = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        public void Advance(TimeSpan by) => Interlocked.Add(ref _ms, (long)by.TotalMilliseconds);

        public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeMilliseconds(Interlocked.Read(ref _ms));
    }

    [Fact]
    public async Task Replay_AfterTheExpiryPassed_KeyStaysGone()
    {
        // SET with a TTL, then an APPEND logged as it came: replayed after the TTL, the APPEND must find the key (as it
        // did) and not create a new one without a TTL; the key is then expired, as it would be had the server run on.
        var clock = new ManualClock();
        await using (KvServer server = await ServerFixture.StartAsync(o => { o.Directory = _dir; o.TimeProvider = clock; }))
        {
            using var c = new RespClient(server.LocalEndPoint);
            Assert.Equal("+OK\r\n", c.Call("SET", "ttlkey", "v", "PX", "10000"));
            clock.Advance(TimeSpan.FromSeconds(5));
            Assert.Equal(":2\r\n", c.Call("APPEND", "ttlkey", "x"));
            Assert.Equal(":2\r\n", c.Call("RPUSH", "ttllist", "a", "b"));
            Assert.Equal(":1\r\n", c.Call("PEXPIRE", "ttllist", "1000"));
            Assert.Equal("+OK\r\n", c.Call("SET", "plain", "p"));
            // And the other way round: an APPEND after the expiry made a new key, without a TTL, which must stay.
            Assert.Equal("+OK\r\n", c.Call("SET", "reborn", "old", "PX", "1000"));
            clock.Advance(TimeSpan.FromSeconds(2));
            Assert.Equal(":3\r\n", c.Call("APPEND", "reborn", "new"));
        }
        clock.Advance(TimeSpan.FromSeconds(20));
        await using (KvServer server = await ServerFixture.StartAsync(o => { o.Directory = _dir; o.TimeProvider = clock; }))
        {
            using var c = new RespClient(server.LocalEndPoint);
            Assert.Equal("$-1\r\n", c.Call("GET", "ttlkey"));
            Assert.Equal(":0\r\n", c.Call("LLEN", "ttllist"));
            Assert.Equal("$1\r\np\r\n", c.Call("GET", "plain"));
            Assert.Equal("$3\r\nnew\r\n", c.Call("GET", "reborn"));
            Assert.Equal(":-1\r\n", c.Call("TTL", "reborn"));
        }
    }

    [Fact]
    public async Task TornLastRecord_IsDroppedAndCutOff()
    {
        // Shard 0's log: one whole record, then a record cut in the middle of its value (a crash during the write).
        string key = ShardKey(0);
        string whole = $"*3\r\n$3\r\nSET\r\n${key.Length}\r\n{key}\r\n$5\r\nwhole\r\n";
        string torn = $"*3\r\n$3\r\nSET\r\n$4\r\ntorn\r\n$10\r\nonly";
        string path = Path.Combine(_dir, "shard-0.aof");
        File.WriteAllText(path, whole + torn);

        await using KvServer server = await ServerFixture.StartAsync(o => o.Directory = _dir);
        using var c = new RespClient(server.LocalEndPoint);
        Assert.Equal("$5\r\nwhole\r\n", c.Call("GET", key));
        Assert.Equal("$-1\r\n", c.Call("GET", "torn"));
        Assert.Equal(Encoding.UTF8.GetByteCount(whole), new FileInfo(path).Length);
    }

    [Fact]
    public async Task FilesOfMoreCpus_RefusedWithWhatToDo()
    {
        File.WriteAllText(Path.Combine(_dir, "shard-3.aof"), "*1\r\n$8\r\nFLUSHALL\r\n");
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => ServerFixture.StartAsync(o => o.Directory = _dir));
        Assert.Contains("--cpus", e.Message);
    }

    private static string ShardKey(int shard)
    {
        for (int i = 0; ; i++)
        {
            string k = "sk" + i;
            if (Store.ByteKeyComparer.ShardOf(Encoding.UTF8.GetBytes(k), 2) == shard) return k;
        }
    }

    private Process StartProcess(out int port)
        => KvProcess.Start(output, out port, "--dir", _dir, "--appendfsync", "always");

    [Fact]
    public async Task KillDashNine_WithAppendfsyncAlways_KeepsEveryAcknowledgedWrite()
    {
        Process server = StartProcess(out int port);
        var endPoint = new IPEndPoint(IPAddress.Loopback, port);
        const int writers = 4;
        var acknowledged = new List<string>[writers];
        long acks = 0;
        using var stop = new CancellationTokenSource();
        var tasks = new Task[writers];
        for (int w = 0; w < writers; w++)
        {
            int id = w;
            acknowledged[id] = [];
            tasks[w] = Task.Run(() =>
            {
                try
                {
                    using var c = new RespClient(endPoint);
                    for (int i = 0; !stop.IsCancellationRequested; i++)
                    {
                        string key = $"crash:{id}:{i}";
                        if (c.Call("SET", key, "value-" + i) != "+OK\r\n") throw new InvalidDataException("SET was not acknowledged with +OK");
                        acknowledged[id].Add(key); // acknowledged: the server said OK, so it must survive the crash
                        Interlocked.Increment(ref acks);
                    }
                }
                catch (Exception e) when (e is System.Net.Sockets.SocketException or EndOfStreamException or IOException)
                {
                    // the server was killed under this client
                }
            });
        }
        // Kill while the writers are writing: once every writer has had some writes acknowledged.
        await Progress.UntilAsync(() => acknowledged.All(a => Volatile.Read(ref a) is { } l && l.Count >= 100) ? 1 : Interlocked.Read(ref acks) - long.MaxValue, 1, "each writer to get 100 writes acknowledged");
        server.Kill(entireProcessTree: true); // SIGKILL: no shutdown, no flush
        await server.WaitForExitAsync();
        stop.Cancel();
        await Task.WhenAll(tasks);
        long total = acknowledged.Sum(a => a.Count);
        output.WriteLine($"{total} writes acknowledged before the kill");

        Process again = StartProcess(out int port2);
        try
        {
            using var c = new RespClient(new IPEndPoint(IPAddress.Loopback, port2));
            for (int w = 0; w < writers; w++)
            {
                foreach (string key in acknowledged[w])
                {
                    string i = key[(key.LastIndexOf(':') + 1)..];
                    Assert.Equal($"${("value-" + i).Length}\r\nvalue-{i}\r\n", c.Call("GET", key));
                }
            }
        }
        finally
        {
            again.Kill(entireProcessTree: true);
            await again.WaitForExitAsync();
        }
    }
}
