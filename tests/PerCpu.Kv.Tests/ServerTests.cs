namespace PerCpu.Kv.Tests;

/// <summary>Whole-server behaviour: max clients, expiry on a clock the test moves, shutdown.</summary>
public sealed class ServerTests
{
    /// <summary>A clock the test moves by hand.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long _ms = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        public void Advance(TimeSpan by) => Interlocked.Add(ref _ms, (long)by.TotalMilliseconds);

        public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeMilliseconds(Interlocked.Read(ref _ms));
    }

    [Fact]
    public async Task MaxClients_RefusesPolitelyBeyond()
    {
        await using KvServer server = await ServerFixture.StartAsync(o => o.MaxClients = 3);
        var held = Enumerable.Range(0, 3).Select(_ => new RespClient(server.LocalEndPoint)).ToList();
        try
        {
            foreach (RespClient c in held) Assert.Equal("+PONG\r\n", c.Call("PING"));
            using (var refused = new RespClient(server.LocalEndPoint))
            {
                Assert.Equal("-ERR max number of clients reached\r\n", refused.ReadReply());
                Assert.True(refused.IsClosedByServer());
            }
            // One leaves: a place is free again.
            held[0].Dispose();
            held.RemoveAt(0);
            await Progress.UntilAsync(() => server.ConnectedClients, 2, "the closed client to be counted out");
            using var again = new RespClient(server.LocalEndPoint);
            Assert.Equal("+PONG\r\n", again.Call("PING"));
        }
        finally
        {
            foreach (RespClient c in held) c.Dispose();
        }
    }

    [Fact]
    public async Task LazyExpiry_KeyGoneOnAccessOnceItsTimePassed()
    {
        var clock = new ManualClock();
        await using KvServer server = await ServerFixture.StartAsync(o => o.TimeProvider = clock);
        using var c = new RespClient(server.LocalEndPoint);
        Assert.Equal("+OK\r\n", c.Call("SET", "lazy", "v", "PX", "5000"));
        Assert.Equal(":5\r\n", c.Call("TTL", "lazy"));
        clock.Advance(TimeSpan.FromMilliseconds(4999));
        Assert.Equal("$1\r\nv\r\n", c.Call("GET", "lazy"));
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal("$-1\r\n", c.Call("GET", "lazy"));
        Assert.Equal(":-2\r\n", c.Call("TTL", "lazy"));
    }

    [Fact]
    public async Task ActiveExpiry_ReclaimsKeysNobodyReads()
    {
        var clock = new ManualClock();
        await using KvServer server = await ServerFixture.StartAsync(o => o.TimeProvider = clock);
        using var c = new RespClient(server.LocalEndPoint);
        var batch = new List<byte>();
        for (int i = 0; i < 1000; i++) batch.AddRange(RespClient.Encode("SET", "vol:" + i, "v", "EX", "10"));
        for (int i = 0; i < 100; i++) batch.AddRange(RespClient.Encode("SET", "keep:" + i, "v"));
        c.SendRaw(batch.ToArray());
        for (int i = 0; i < 1100; i++) Assert.Equal("+OK\r\n", c.ReadReply());
        Assert.Equal(":1100\r\n", c.Call("DBSIZE"));

        clock.Advance(TimeSpan.FromSeconds(11));
        // DBSIZE counts keys not yet reclaimed (as Redis's does): only the shards' expiry timers bring it down.
        await Progress.UntilAsync(() => long.Parse(c.Call("DBSIZE").AsSpan(1).TrimEnd("\r\n")), 100, "the active expiry cycle to reclaim 1000 expired keys");
        Assert.Contains("expired_keys:1000", c.Call("INFO", "stats"));
    }

    [Fact]
    public async Task Dispose_ClosesClientsAndStops()
    {
        KvServer server = await ServerFixture.StartAsync();
        var clients = Enumerable.Range(0, 10).Select(_ => new RespClient(server.LocalEndPoint)).ToList();
        foreach (RespClient c in clients) Assert.Equal("+PONG\r\n", c.Call("PING"));
        await server.DisposeAsync();
        Assert.Equal(0, server.ConnectedClients);
        Assert.True(server.Runtime.IsDisposed);
        foreach (RespClient c in clients)
        {
            Assert.True(c.IsClosedByServer());
            c.Dispose();
        }
    }
}
