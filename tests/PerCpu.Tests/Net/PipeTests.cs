using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using PerCpu.Net;
using PerCpu.Tests.Io;
using static PerCpu.Tests.Net.NetTestUtil;

namespace PerCpu.Tests.Net;

/// <summary>Issue 12: the IDuplexPipe view of a connection, with the CPU as the pipes' scheduler.</summary>
public sealed class PipeTests
{
    [EpollFact]
    public async Task LineProtocol_OverTheTransportPipe_AnswersPipelinedRequestsInOrder_OnTheOwningCpu()
    {
        await using var runtime = TestUtil.Start(2);
        long wrongCpu = 0;
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, async connection =>
        {
            IDuplexPipe pipe = connection.Transport;
            while (true)
            {
                ReadResult result = await pipe.Input.ReadAsync();
                if (Cpu.Current != connection.Cpu) Interlocked.Increment(ref wrongCpu);
                ReadOnlySequence<byte> buffer = result.Buffer;
                while (buffer.PositionOf((byte)'\n') is SequencePosition end)
                {
                    // Reply "<line>!\n" for each line: written without flushing, so a batch goes out in one send.
                    foreach (ReadOnlyMemory<byte> segment in buffer.Slice(0, end)) pipe.Output.Write(segment.Span);
                    pipe.Output.Write("!\n"u8);
                    buffer = buffer.Slice(buffer.GetPosition(1, end));
                }
                pipe.Input.AdvanceTo(buffer.Start, result.Buffer.End);
                await pipe.Output.FlushAsync();
                if (Cpu.Current != connection.Cpu) Interlocked.Increment(ref wrongCpu);
                if (result.IsCompleted) return;
            }
        });
        using Socket client = await ConnectAsync(listener.LocalEndPoint);
        var request = new StringBuilder();
        var expected = new StringBuilder();
        for (int i = 0; i < 5000; i++)
        {
            request.Append("line ").Append(i).Append('\n');
            expected.Append("line ").Append(i).Append("!\n");
        }
        byte[] sent = Encoding.ASCII.GetBytes(request.ToString());
        Task writing = Task.Run(async () =>
        {
            for (int offset = 0; offset < sent.Length; offset += 1000)
                await client.SendAsync(sent.AsMemory(offset, Math.Min(1000, sent.Length - offset)), SocketFlags.None);
            client.Shutdown(SocketShutdown.Send);
        });
        long received = 0;
        var reply = new MemoryStream();
        await Progress.Await(Task.Run(async () =>
        {
            var buffer = new byte[8192];
            int n;
            while ((n = await client.ReceiveAsync(buffer, SocketFlags.None)) > 0)
            {
                reply.Write(buffer, 0, n);
                Interlocked.Add(ref received, n);
            }
        }), () => Interlocked.Read(ref received));
        await writing;
        Assert.Equal(expected.ToString(), Encoding.ASCII.GetString(reply.ToArray()));
        Assert.Equal(0, Interlocked.Read(ref wrongCpu));
    }

    [EpollFact]
    public async Task HandlerReturningRightAfterWriting_StillSendsEverythingItWrote()
    {
        await using var runtime = TestUtil.Start(2);
        var payload = new byte[1 << 20];
        for (int i = 0; i < payload.Length; i++) payload[i] = Pattern(3, i);
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, async connection =>
        {
            // Writes 1 MiB (past the pipe's pause threshold: FlushAsync waits for the send loop) and returns.
            await connection.Transport.Output.WriteAsync(payload);
        });
        using Socket client = await ConnectAsync(listener.LocalEndPoint);
        long read = 0;
        var got = new byte[payload.Length];
        await Progress.Await(ReadExactlyAsync(client, got, n => Interlocked.Add(ref read, n)), () => Interlocked.Read(ref read));
        Assert.Equal(payload, got);
        Assert.Equal(0, await client.ReceiveAsync(new byte[1], SocketFlags.None).WithHangDetector());
    }
}
