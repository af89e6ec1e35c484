using System.Text;
using PerCpu.Kv.Store;

namespace PerCpu.Kv.Tests;

/// <summary>Keys on both shards: routing, multi-key fan-out and gather, per-connection order, per-key atomicity.</summary>
public sealed class ShardingTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    /// <summary>Keys of a given shard (of two), found by the server's own routing function.</summary>
    private static List<string> KeysOnShard(int shard, int count, string prefix)
    {
        var keys = new List<string>();
        for (int i = 0; keys.Count < count; i++)
        {
            string k = prefix + i;
            if (ByteKeyComparer.ShardOf(Encoding.UTF8.GetBytes(k), 2) == shard) keys.Add(k);
        }
        return keys;
    }

    [Fact]
    public void EveryKeyLivesOnItsShard_BothShardsUsed()
    {
        using var c = new RespClient(fixture.EndPoint);
        List<string> zero = KeysOnShard(0, 50, "route0:"), one = KeysOnShard(1, 50, "route1:");
        foreach (string k in zero.Concat(one)) Assert.Equal("+OK\r\n", c.Call("SET", k, k));
        string info = c.Call("INFO", "percpu");
        Assert.Contains("cpu0_keys:", info);
        Assert.Contains("cpu1_keys:", info);
        foreach (string k in zero.Concat(one)) Assert.Equal($"${k.Length}\r\n{k}\r\n", c.Call("GET", k));
    }

    [Fact]
    public void PipelineAcrossShards_KeepsTheConnectionsOrder()
    {
        // One connection writes then reads keys on both shards in one pipelined batch: every read sees the write
        // before it and the replies come back in the order sent, though the shards ran their parts in parallel.
        using var c = new RespClient(fixture.EndPoint);
        List<string> zero = KeysOnShard(0, 100, "ord0:"), one = KeysOnShard(1, 100, "ord1:");
        var batch = new List<byte>();
        var expected = new List<string>();
        for (int i = 0; i < 100; i++)
        {
            foreach (string k in new[] { zero[i], one[i] })
            {
                batch.AddRange(RespClient.Encode("SET", k, "v" + i));
                expected.Add("+OK\r\n");
                batch.AddRange(RespClient.Encode("APPEND", k, "!"));
                expected.Add($":{("v" + i).Length + 1}\r\n");
                batch.AddRange(RespClient.Encode("GET", k));
                expected.Add($"${("v" + i).Length + 1}\r\nv{i}!\r\n");
            }
            batch.AddRange(RespClient.Encode("MGET", one[i], zero[i]));
            expected.Add($"*2\r\n${("v" + i).Length + 1}\r\nv{i}!\r\n${("v" + i).Length + 1}\r\nv{i}!\r\n");
            batch.AddRange(RespClient.Encode("DEL", zero[i], one[i], "ord:none"));
            expected.Add(":2\r\n");
            batch.AddRange(RespClient.Encode("EXISTS", zero[i], one[i]));
            expected.Add(":0\r\n");
        }
        c.SendRaw(batch.ToArray());
        foreach (string e in expected) Assert.Equal(e, c.ReadReply());
    }

    [Fact]
    public void MsetMget_FanOutAndGatherInKeyOrder()
    {
        using var c = new RespClient(fixture.EndPoint);
        var args = new List<string> { "MSET" };
        for (int i = 0; i < 40; i++)
        {
            args.Add("m:" + i);
            args.Add("val" + i);
        }
        Assert.Equal("+OK\r\n", c.Call(args.ToArray()));
        var get = new List<string> { "MGET" };
        var want = new StringBuilder("*41\r\n");
        for (int i = 39; i >= 0; i--)
        {
            get.Add("m:" + i);
            want.Append($"${("val" + i).Length}\r\nval{i}\r\n");
        }
        get.Add("m:missing");
        want.Append("$-1\r\n");
        Assert.Equal(want.ToString(), c.Call(get.ToArray()));
        Assert.Equal(":40\r\n", c.Call(["EXISTS", .. Enumerable.Range(0, 40).Select(i => "m:" + i)]));
        Assert.Equal(":40\r\n", c.Call(["UNLINK", .. Enumerable.Range(0, 40).Select(i => "m:" + i), "m:missing"]));
    }

    [Theory]
    [InlineData(KvTransport.PerCpu)]
    [InlineData(KvTransport.Socket)]
    public async Task LargeRepliesBesideSmallOnes_ArriveWholeAndInOrder(KvTransport transport)
    {
        // Replies of 8 KB and more are sent from the shards' buffers in one gathering send (PerCpu transport), the
        // rest copied: the bytes on the wire must be the same either way.
        await using KvServer server = await ServerFixture.StartAsync(o => o.Transport = transport);
        using var c = new RespClient(server.LocalEndPoint);
        List<string> zero = KeysOnShard(0, 4, "big0:"), one = KeysOnShard(1, 4, "big1:");
        var values = new Dictionary<string, string>();
        int size = 5000;
        foreach (string k in zero.Zip(one).SelectMany(p => new[] { p.First, p.Second }))
        {
            values[k] = new string((char)('a' + values.Count), size);
            size *= 2;
            Assert.Equal("+OK\r\n", c.Call("SET", k, values[k]));
        }
        for (int round = 0; round < 3; round++)
        {
            var batch = new List<byte>();
            var expected = new List<string>();
            foreach ((string k, string v) in values)
            {
                batch.AddRange(RespClient.Encode("GET", k));
                expected.Add($"${v.Length}\r\n{v}\r\n");
                batch.AddRange(RespClient.Encode("PING"));
                expected.Add("+PONG\r\n");
                batch.AddRange(RespClient.Encode("STRLEN", k));
                expected.Add($":{v.Length}\r\n");
            }
            string[] keys = values.Keys.ToArray();
            batch.AddRange(RespClient.Encode(["MGET", .. keys]));
            expected.Add($"*{keys.Length}\r\n" + string.Concat(keys.Select(k => $"${values[k].Length}\r\n{values[k]}\r\n")));
            c.SendRaw(batch.ToArray());
            foreach (string e in expected) Assert.Equal(e, c.ReadReply());
        }
        if (transport == KvTransport.PerCpu) Assert.True(server.GatheredSends > 0, "the large replies were copied, not gathered");
        else Assert.Equal(0, server.GatheredSends);
    }

    [Fact]
    public async Task ConcurrentIncrements_OnOneKey_AreAtomic()
    {
        const int clients = 8, perClient = 500;
        var tasks = new Task[clients];
        for (int t = 0; t < clients; t++)
        {
            tasks[t] = Task.Run(() =>
            {
                using var c = new RespClient(fixture.EndPoint);
                var batch = new List<byte>();
                for (int i = 0; i < perClient; i++) batch.AddRange(RespClient.Encode("INCR", "counter"));
                c.SendRaw(batch.ToArray());
                for (int i = 0; i < perClient; i++) Assert.StartsWith(":", c.ReadReply());
            });
        }
        await Task.WhenAll(tasks);
        using var check = new RespClient(fixture.EndPoint);
        Assert.Equal($"${(clients * perClient).ToString().Length}\r\n{clients * perClient}\r\n", check.Call("GET", "counter"));
    }

    [Fact]
    public async Task WritesFromConnectionsOnBothCpus_SeenByEveryOtherConnection()
    {
        // Connections are dealt round robin to the CPUs: with several, both CPUs own some, and each writes keys of both shards.
        var clients = Enumerable.Range(0, 4).Select(_ => new RespClient(fixture.EndPoint)).ToArray();
        try
        {
            for (int i = 0; i < clients.Length; i++)
            {
                for (int k = 0; k < 20; k++) Assert.Equal("+OK\r\n", clients[i].Call("SET", $"w{i}:{k}", $"{i}.{k}"));
            }
            for (int reader = 0; reader < clients.Length; reader++)
            {
                for (int i = 0; i < clients.Length; i++)
                {
                    for (int k = 0; k < 20; k++)
                    {
                        string v = $"{i}.{k}";
                        Assert.Equal($"${v.Length}\r\n{v}\r\n", clients[reader].Call("GET", $"w{i}:{k}"));
                    }
                }
            }
        }
        finally
        {
            foreach (RespClient c in clients) c.Dispose();
        }
        await Task.CompletedTask;
    }
}
