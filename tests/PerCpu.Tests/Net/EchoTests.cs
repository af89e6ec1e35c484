using System.Net.Sockets;
using PerCpu.Net;
using PerCpu.Tests.Io;
using static PerCpu.Tests.Net.NetTestUtil;

namespace PerCpu.Tests.Net;

/// <summary>
/// Issue 12, sockets owned by a CPU: echo over real loopback sockets, many connections across CPUs with pipelined
/// writes; every byte comes back in order and every callback of a connection runs on its CPU.
/// </summary>
[Collection("Stress")]
public sealed class EchoTests
{
    [EpollTheory]
    [InlineData(CpuListenerDistribution.ReusePort, false)]
    [InlineData(CpuListenerDistribution.RoundRobin, false)]
    [InlineData(CpuListenerDistribution.ReusePort, true)]  // the portable backend (.NET async Socket, completions posted)
    [InlineData(CpuListenerDistribution.RoundRobin, true)]
    public async Task ManyPipelinedConnections_EchoEveryByteInOrder_OnTheirOwnCpu(CpuListenerDistribution distribution, bool socketBackend)
    {
        const int Connections = 24, BytesPerConnection = 256 * 1024;
        await using var runtime = TestUtil.Start(2, o => o.SocketBackend = socketBackend);
        var stats = new EchoStats();
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, Echo(stats), new CpuListenerOptions { Distribution = distribution });
        long received = 0;
        var clients = new Task[Connections];
        for (int c = 0; c < Connections; c++)
        {
            int id = c;
            clients[c] = Task.Run(async () =>
            {
                using Socket socket = await ConnectAsync(listener.LocalEndPoint);
                var payload = new byte[BytesPerConnection];
                for (int i = 0; i < payload.Length; i++) payload[i] = Pattern(id, i);
                // Writes in pieces of varying size without waiting for the echo: requests pipelined on the wire.
                Task writer = Task.Run(async () =>
                {
                    var random = new Random(id);
                    for (int offset = 0; offset < payload.Length;)
                    {
                        int n = Math.Min(random.Next(1, 3000), payload.Length - offset);
                        await socket.SendAsync(payload.AsMemory(offset, n), SocketFlags.None);
                        offset += n;
                    }
                });
                var echoed = new byte[BytesPerConnection];
                await ReadExactlyAsync(socket, echoed, n => Interlocked.Add(ref received, n));
                await writer;
                for (int i = 0; i < echoed.Length; i++)
                    if (echoed[i] != payload[i]) Assert.Fail($"Connection {id}: byte {i} is {echoed[i]}, sent {payload[i]}.");
            });
        }
        await Progress.Await(Task.WhenAll(clients), () => Volatile.Read(ref received));
        Assert.Equal(0, Interlocked.Read(ref stats.WrongCpu));
        Assert.Equal((long)Connections * BytesPerConnection, Interlocked.Read(ref stats.Bytes));
        if (distribution == CpuListenerDistribution.RoundRobin)
        {
            Assert.Equal(Connections / 2, Interlocked.Read(ref stats.PerCpu[0]));
            Assert.Equal(Connections / 2, Interlocked.Read(ref stats.PerCpu[1]));
        }
    }

    [EpollTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task OutboundConnection_FromACpu_EchoesThroughAListenerOnAnother(bool socketBackend)
    {
        await using var runtime = TestUtil.Start(2, o => o.SocketBackend = socketBackend);
        var stats = new EchoStats();
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, Echo(stats), new CpuListenerOptions { Cpus = CpuMask.Of(0) });
        long total = await runtime[1].InvokeAsync(async () =>
        {
            await using CpuConnection connection = await runtime[1].ConnectTcpAsync(listener.LocalEndPoint);
            Assert.Same(runtime[1], Cpu.Current);
            var buffer = new byte[100];
            long sum = 0;
            for (int i = 0; i < 100; i++)
            {
                buffer.AsSpan().Fill((byte)i);
                await connection.SendAsync(buffer);
                Assert.Same(runtime[1], Cpu.Current);
                int got = 0;
                while (got < buffer.Length)
                {
                    int n = await connection.ReceiveAsync(buffer.AsMemory(got));
                    Assert.Same(runtime[1], Cpu.Current);
                    Assert.NotEqual(0, n);
                    got += n;
                }
                Assert.All(buffer, b => Assert.Equal((byte)i, b));
                sum += got;
            }
            return sum;
        }).AsTask().WithHangDetector();
        Assert.Equal(10_000, total);
        Assert.Equal(0, Interlocked.Read(ref stats.WrongCpu));
    }

    [EpollTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task GatheringSend_WritesEverySegmentInOrder(bool socketBackend)
    {
        await using var runtime = TestUtil.Start(2, o => o.SocketBackend = socketBackend);
        var segments = new byte[200][];
        for (int i = 0; i < segments.Length; i++) segments[i] = Enumerable.Repeat((byte)i, i % 7 + 1).ToArray();
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, async connection =>
        {
            // 200 segments: more than one sendmsg's 64 iovecs.
            await connection.SendAsync(Segments.Of(segments));
        });
        using Socket client = await ConnectAsync(listener.LocalEndPoint);
        var expected = segments.SelectMany(s => s).ToArray();
        var got = new byte[expected.Length];
        await ReadExactlyAsync(client, got).WithHangDetector();
        Assert.Equal(expected, got);
        Assert.Equal(0, await client.ReceiveAsync(new byte[1], SocketFlags.None).WithHangDetector()); // then closed
    }
}
