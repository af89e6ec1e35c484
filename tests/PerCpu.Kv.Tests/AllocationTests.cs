using System.Text;
using Xunit.Abstractions;

namespace PerCpu.Kv.Tests;

/// <summary>
/// Steady-state allocation per request, measured on the server's CPU threads (parser, routing, shard work, reply
/// assembly) and in the whole process (the interim Socket transport's engine thread and the test client included).
/// </summary>
public sealed class AllocationTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(KvTransport.PerCpu)]
    [InlineData(KvTransport.Socket)]
    public async Task SteadyState_CpuThreadsAllocateNothingPerRequest(KvTransport transport)
    {
        await using KvServer server = await ServerFixture.StartAsync(o => o.Transport = transport);
        using var client = new RespClient(server.LocalEndPoint);

        // A pipelined batch of 16 SETs and 16 GETs on keys of both shards; values of fixed length (overwritten in place).
        var batch = new List<byte>();
        for (int i = 0; i < 16; i++)
        {
            batch.AddRange(RespClient.Encode("SET", "alloc:" + i, "0123456789"));
            batch.AddRange(RespClient.Encode("GET", "alloc:" + i));
        }
        byte[] request = batch.ToArray();
        int replyBytes = 16 * ("+OK\r\n".Length + "$10\r\n0123456789\r\n".Length);
        byte[] reply = new byte[replyBytes];
        void RoundTrip()
        {
            client.SendRaw(request);
            int got = 0;
            while (got < replyBytes) got += client.Socket.Receive(reply, got, replyBytes - got, System.Net.Sockets.SocketFlags.None);
        }

        for (int i = 0; i < 2000; i++) RoundTrip(); // warm-up: JIT tiers, pools, dictionary growth
        const int batches = 5000;
        long[] before = await CpuAllocations(server);
        long processBefore = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = 0; i < batches; i++) RoundTrip();
        long processAfter = GC.GetTotalAllocatedBytes(precise: true);
        long[] after = await CpuAllocations(server);

        long cpuBytes = 0;
        for (int i = 0; i < before.Length; i++) cpuBytes += after[i] - before[i];
        double requests = batches * 32.0;
        output.WriteLine($"transport {transport}");
        output.WriteLine($"CPU threads: {cpuBytes} B over {requests} requests = {cpuBytes / requests:F3} B/request");
        output.WriteLine($"whole process (transport threads and the test client included): {(processAfter - processBefore) / requests:F2} B/request, {(processAfter - processBefore) / (double)batches:F1} B/batch");
        Assert.Equal(0, server.OffCpuResumes);
        // The CPU threads' own work allocates nothing per request; a few bytes over the run may come from the
        // runtime's occasional internal growth, so the bound is per request, not the total.
        Assert.True(cpuBytes / requests < 1.0, $"CPU threads allocated {cpuBytes / requests:F3} B/request in steady state");
    }

    private static async Task<long[]> CpuAllocations(KvServer server)
    {
        var result = new long[server.Runtime.CpuCount];
        for (int i = 0; i < result.Length; i++) result[i] = await server.Runtime[i].InvokeAsync(static () => GC.GetAllocatedBytesForCurrentThread());
        return result;
    }
}
