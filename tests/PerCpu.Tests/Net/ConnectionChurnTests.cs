using System.Net.Sockets;
using PerCpu.Net;
using PerCpu.Tests.Io;
using static PerCpu.Tests.Net.NetTestUtil;

namespace PerCpu.Tests.Net;

/// <summary>
/// Stress (issue 12): thousands of short connections opened and closed from several threads at once, CPUs parking
/// between them (no idle spin), both distributions: every byte echoes back in order, every connection is accepted
/// and closed exactly once, and no endpoint is left behind on any CPU.
/// </summary>
[Collection("Stress")]
public sealed class ConnectionChurnTests
{
    [EpollTheory]
    [InlineData(CpuListenerDistribution.ReusePort, false)]
    [InlineData(CpuListenerDistribution.RoundRobin, false)]
    [InlineData(CpuListenerDistribution.RoundRobin, true)] // the portable backend
    public async Task ThousandsOfShortConnections_EchoExactly_AndLeaveNothingBehind(CpuListenerDistribution distribution, bool socketBackend)
    {
        const int Clients = 8, ConnectionsPerClient = 250;
        await using var runtime = TestUtil.Start(2, o => { o.IdleSpin = TimeSpan.Zero; o.StallThreshold = Timeout.InfiniteTimeSpan; o.SocketBackend = socketBackend; });
        var stats = new EchoStats();
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, Echo(stats), new CpuListenerOptions { Distribution = distribution });
        long finished = 0;
        var clients = new Task[Clients];
        for (int c = 0; c < Clients; c++)
        {
            int client = c;
            clients[c] = Task.Run(async () =>
            {
                var random = new Random(client);
                for (int i = 0; i < ConnectionsPerClient; i++)
                {
                    int id = client * ConnectionsPerClient + i;
                    var payload = new byte[random.Next(1, 20_000)];
                    for (int k = 0; k < payload.Length; k++) payload[k] = Pattern(id, k);
                    using Socket socket = await ConnectAsync(listener.LocalEndPoint);
                    await socket.SendAsync(payload, SocketFlags.None);
                    socket.Shutdown(SocketShutdown.Send); // the server sees end of stream after the payload
                    var echoed = new byte[payload.Length];
                    await ReadExactlyAsync(socket, echoed);
                    Assert.Equal(0, await socket.ReceiveAsync(new byte[1], SocketFlags.None)); // then it closes
                    if (!echoed.AsSpan().SequenceEqual(payload)) Assert.Fail($"connection {id}: echo differs");
                    Interlocked.Increment(ref finished);
                }
            });
        }
        await Progress.Await(Task.WhenAll(clients), () => Interlocked.Read(ref finished));

        const int Total = Clients * ConnectionsPerClient;
        await Progress.Until(() => runtime.GetIoStatistics().ConnectionsClosed == Total, () => runtime.GetIoStatistics().ConnectionsClosed, "every connection closed");
        CpuIoStatistics io = runtime.GetIoStatistics();
        Assert.Equal(Total, io.ConnectionsAccepted);
        Assert.Equal(0, io.ConnectionsOpen);
        Assert.Equal(0, listener.ConnectionCount);
        Assert.Equal(0, Interlocked.Read(ref stats.WrongCpu));
        Assert.Equal(io.BytesReceived, io.BytesSent);
        // Only the listening sockets are left on the CPUs.
        int expectedListeners(Cpu cpu) => distribution == CpuListenerDistribution.ReusePort || cpu.Id == 0 ? 1 : 0;
        foreach (Cpu cpu in runtime.Cpus)
            Assert.Equal(expectedListeners(cpu), await cpu.InvokeAsync(() => cpu.EndpointCount));
        if (distribution == CpuListenerDistribution.RoundRobin)
            Assert.Equal(Total / 2, runtime[1].GetIoStatistics().ConnectionsAccepted);
    }
}
