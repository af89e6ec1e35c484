using StackExchange.Redis;

namespace PerCpu.Kv.Tests;

/// <summary>A client nobody here wrote: StackExchange.Redis 3.4.35 against percpu-kv.</summary>
public sealed class ClientLibraryTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private async Task<ConnectionMultiplexer> ConnectAsync()
    {
        var options = new ConfigurationOptions
        {
            EndPoints = { fixture.EndPoint },
            AbortOnConnectFail = true,
            AllowAdmin = true, // INFO and CONFIG GET are admin commands to this client
        };
        return await ConnectionMultiplexer.ConnectAsync(options);
    }

    [Fact]
    public async Task StringsListsAndExpiry_ThroughStackExchangeRedis()
    {
        await using ConnectionMultiplexer mux = await ConnectAsync();
        IDatabase db = mux.GetDatabase();
        Assert.True(await db.StringSetAsync("se:a", "1"));
        Assert.Equal("1", (string?)await db.StringGetAsync("se:a"));
        Assert.Equal(11, await db.StringIncrementAsync("se:a", 10));
        Assert.Equal(10, await db.StringDecrementAsync("se:a"));
        Assert.False(await db.StringSetAsync("se:a", "x", when: When.NotExists));
        Assert.True(await db.StringSetAsync("se:b", "2", TimeSpan.FromMinutes(5)));
        TimeSpan? ttl = await db.KeyTimeToLiveAsync("se:b");
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(5));
        Assert.True(await db.KeyPersistAsync("se:b"));
        Assert.Null(await db.KeyTimeToLiveAsync("se:b"));
        RedisValue[] values = await db.StringGetAsync(["se:a", "se:b", "se:none"]);
        Assert.Equal(["10", "2", RedisValue.Null], values);
        Assert.Equal(2, await db.KeyDeleteAsync(["se:a", "se:b", "se:none"]));

        Assert.Equal(3, await db.ListRightPushAsync("se:l", ["a", "b", "c"]));
        Assert.Equal(4, await db.ListLeftPushAsync("se:l", "z"));
        Assert.Equal(["z", "a", "b", "c"], (await db.ListRangeAsync("se:l")).Select(v => (string)v!));
        Assert.Equal("z", (string?)await db.ListLeftPopAsync("se:l"));
        Assert.Equal("c", (string?)await db.ListRightPopAsync("se:l"));
        Assert.Equal(2, await db.ListLengthAsync("se:l"));
        Assert.Equal(RedisType.List, await db.KeyTypeAsync("se:l"));
        await Assert.ThrowsAsync<RedisServerException>(() => db.StringGetAsync("se:l"));
    }

    [Fact]
    public async Task Batch_PipelinedAcrossShards()
    {
        await using ConnectionMultiplexer mux = await ConnectAsync();
        IDatabase db = mux.GetDatabase();
        IBatch batch = db.CreateBatch();
        var sets = Enumerable.Range(0, 200).Select(i => batch.StringSetAsync("seb:" + i, i)).ToArray();
        var gets = Enumerable.Range(0, 200).Select(i => batch.StringGetAsync("seb:" + i)).ToArray();
        batch.Execute();
        Assert.All(await Task.WhenAll(sets), Assert.True);
        RedisValue[] got = await Task.WhenAll(gets);
        for (int i = 0; i < 200; i++) Assert.Equal(i, (int)got[i]);
    }

    [Fact]
    public async Task ServerCommands_InfoPingConfig()
    {
        await using ConnectionMultiplexer mux = await ConnectAsync();
        IServer server = mux.GetServer(fixture.EndPoint);
        Assert.True((await server.PingAsync()) >= TimeSpan.Zero);
        var info = await server.InfoAsync("percpu");
        Assert.Contains(info.SelectMany(g => g), kv => kv.Key == "cpus" && kv.Value == "2");
        Assert.Contains(await server.ConfigGetAsync("appendonly"), kv => kv.Key == "appendonly");
    }
}
