using System.Diagnostics;
using System.Threading.Tasks.Sources;
using Xunit.Abstractions;

namespace PerCpu.Kv.Tests;

/// <summary>
/// The two ways a connection reaches another CPU's shard (issue 13: "InvokeAsync or a Send/reply pair — measure
/// which"): both must keep a connection's order; their round-trip costs are printed (measured, not asserted: the
/// outcome of a test never depends on timing).
/// </summary>
public sealed class CrossShardCallTests(ITestOutputHelper output)
{
    [Fact]
    public async Task SendReplyMode_PipelineAcrossShards_RepliesInOrder()
    {
        await using KvServer server = await ServerFixture.StartAsync(o => o.CrossShardCalls = CrossShardCalls.SendReply);
        using var c = new RespClient(server.LocalEndPoint);
        var batch = new List<byte>();
        for (int i = 0; i < 300; i++)
        {
            batch.AddRange(RespClient.Encode("SET", "sr:" + i, "v" + i));
            batch.AddRange(RespClient.Encode("MGET", "sr:" + i, "sr:" + (i + 1000)));
            batch.AddRange(RespClient.Encode("INCR", "sr:count"));
        }
        c.SendRaw(batch.ToArray());
        for (int i = 0; i < 300; i++)
        {
            Assert.Equal("+OK\r\n", c.ReadReply());
            Assert.Equal($"*2\r\n${("v" + i).Length}\r\nv{i}\r\n$-1\r\n", c.ReadReply());
            Assert.Equal($":{i + 1}\r\n", c.ReadReply());
        }
        Assert.Equal(0, server.OffCpuResumes);
    }

    /// <summary>A Send to the other CPU and a Send back that completes a reusable awaitable: the SendReply mode's mechanism.</summary>
    private sealed class SendReply : IValueTaskSource<int>
    {
        private ManualResetValueTaskSourceCore<int> _core;
        public Cpu Home = null!;
        public int Executed;

        public static readonly Action<SendReply, long> Run = static (s, _) =>
        {
            s.Executed++;
            s.Home.Send(Done!, s);
        };

        private static readonly Action<SendReply, long> Done = static (s, _) => s._core.SetResult(0);

        public ValueTask<int> Call(Cpu target)
        {
            _core.Reset();
            target.Send(Run, this);
            return new ValueTask<int>(this, _core.Version);
        }

        public int GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
            => _core.OnCompleted(continuation, state, token, flags);
    }

    [Fact]
    public async Task RoundTrip_InvokeAsyncVersusSendReply_Measured()
    {
        await using CpuRuntime runtime = CpuRuntime.Start(new CpuRuntimeOptions { CpuCount = 2, PinThreads = false });
        const int calls = 5_000;
        int invoked = 0;
        Func<int> func = () => ++invoked;
        var sr = new SendReply { Home = runtime[0] };
        var invokeTimes = new List<double>();
        var sendTimes = new List<double>();
        for (int round = 0; round < 3; round++)
        {
            invokeTimes.Add(await runtime[0].InvokeAsync(async () =>
            {
                long start = Stopwatch.GetTimestamp();
                for (int i = 0; i < calls; i++) await runtime[1].InvokeAsync(func);
                return Stopwatch.GetElapsedTime(start).TotalNanoseconds / calls;
            }));
            sendTimes.Add(await runtime[0].InvokeAsync(async () =>
            {
                long start = Stopwatch.GetTimestamp();
                for (int i = 0; i < calls; i++) await sr.Call(runtime[1]).ConfigureAwait(false);
                return Stopwatch.GetElapsedTime(start).TotalNanoseconds / calls;
            }));
        }
        Assert.Equal(3 * calls, invoked);
        Assert.Equal(3 * calls, sr.Executed);
        invokeTimes.Sort();
        sendTimes.Sort();
        output.WriteLine($"round trip CPU 0 -> CPU 1 -> CPU 0, median of 3 x {calls}: InvokeAsync {invokeTimes[1]:F0} ns, Send/reply {sendTimes[1]:F0} ns (load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]})");
    }
}
