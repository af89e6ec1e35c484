using System.Net;
using System.Net.Sockets;
using PerCpu.Net;
using PerCpu.Tests.Io;
using static PerCpu.Tests.Net.NetTestUtil;

namespace PerCpu.Tests.Net;

/// <summary>
/// Issue 12: peer reset, half-close, end of stream mid-read, send after the peer closed, connect refused, a handler
/// that throws, use from the wrong thread. The awaiter gets the error; the CPU and the other connections go on.
/// </summary>
public sealed class ConnectionFailureTests
{
    /// <summary>Runs <paramref name="handler"/> for the first connection and hands its outcome back to the test.</summary>
    private static (CpuListener Listener, Task<T> Outcome) ListenOnce<T>(CpuRuntime runtime, Func<CpuConnection, Task<T>> handler, int cpu = 0)
    {
        var outcome = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        CpuListener listener = runtime.ListenTcp(AnyLoopback, async connection =>
        {
            try { outcome.TrySetResult(await handler(connection)); }
            catch (Exception e) { outcome.TrySetException(e); }
        }, new CpuListenerOptions { Cpus = CpuMask.Of(cpu) });
        return (listener, outcome.Task);
    }

    [EpollFact]
    public async Task PeerReset_FailsThePendingReceiveWithConnectionReset_AndTheCpuGoesOn()
    {
        await using var runtime = TestUtil.Start(2);
        var (listener, outcome) = ListenOnce(runtime, async connection =>
        {
            var buffer = new byte[16];
            while (await connection.ReceiveAsync(buffer) > 0) { }
            return "end of stream";
        });
        await using (listener)
        {
            using (Socket client = await ConnectAsync(listener.LocalEndPoint))
            {
                await client.SendAsync(new byte[] { 1 }, SocketFlags.None);
                client.LingerState = new LingerOption(true, 0); // close sends RST
            }
            var error = await Assert.ThrowsAsync<SocketException>(() => outcome.WithHangDetector());
            Assert.Equal(SocketError.ConnectionReset, error.SocketErrorCode);
            await AssertCpuStillEchoes(runtime, 0);
        }
    }

    [EpollFact]
    public async Task HalfClose_ReceivesEndOfStream_AndTheReplyStillReachesThePeer()
    {
        await using var runtime = TestUtil.Start(2);
        var (listener, outcome) = ListenOnce(runtime, async connection =>
        {
            var buffer = new byte[64];
            int total = 0, n;
            while ((n = await connection.ReceiveAsync(buffer.AsMemory(total))) > 0) total += n;
            await connection.SendAsync(buffer.AsMemory(0, total)); // reply after the peer's end of stream
            return total;
        });
        await using (listener)
        {
            using Socket client = await ConnectAsync(listener.LocalEndPoint);
            await client.SendAsync("hello"u8.ToArray(), SocketFlags.None);
            client.Shutdown(SocketShutdown.Send);
            var reply = new byte[5];
            await ReadExactlyAsync(client, reply).WithHangDetector();
            Assert.Equal("hello"u8.ToArray(), reply);
            Assert.Equal(5, await outcome.WithHangDetector());
            Assert.Equal(0, await client.ReceiveAsync(new byte[1], SocketFlags.None).WithHangDetector()); // closed after the handler
        }
    }

    [EpollFact]
    public async Task EndOfStreamMidMessage_ReturnsWhatArrivedThenZero()
    {
        await using var runtime = TestUtil.Start(2);
        var (listener, outcome) = ListenOnce(runtime, async connection =>
        {
            // Expects 100 bytes; the peer sends 30 and closes.
            var buffer = new byte[100];
            int total = 0, n;
            while (total < buffer.Length && (n = await connection.ReceiveAsync(buffer.AsMemory(total))) > 0) total += n;
            return total;
        });
        await using (listener)
        {
            using (Socket client = await ConnectAsync(listener.LocalEndPoint))
                await client.SendAsync(new byte[30], SocketFlags.None);
            Assert.Equal(30, await outcome.WithHangDetector());
        }
    }

    [EpollFact]
    public async Task SendAfterThePeerClosed_FailsWithASocketException()
    {
        await using var runtime = TestUtil.Start(2);
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var (listener, outcome) = ListenOnce(runtime, async connection =>
        {
            var buffer = new byte[1];
            Assert.Equal(0, await connection.ReceiveAsync(buffer)); // the peer closed
            var chunk = new byte[64 * 1024];
            // The first sends may still be taken by the kernel; the peer's RST then makes one fail.
            for (int i = 0; ; i++)
            {
                await connection.SendAsync(chunk);
                if (i > 10_000) return "never failed";
            }
        });
        await using (listener)
        {
            using (Socket client = await ConnectAsync(listener.LocalEndPoint)) { }
            var error = await Assert.ThrowsAsync<SocketException>(() => outcome.WithHangDetector());
            Assert.Contains(error.SocketErrorCode, new[] { SocketError.Shutdown, SocketError.ConnectionReset });
            await AssertCpuStillEchoes(runtime, 0);
        }
    }

    [EpollFact]
    public async Task ConnectRefused_FailsWithConnectionRefused()
    {
        await using var runtime = TestUtil.Start(2);
        // A port that was free a moment ago and has no listener now.
        int port;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(AnyLoopback);
            port = ((IPEndPoint)probe.LocalEndPoint!).Port;
        }
        var error = await Assert.ThrowsAsync<SocketException>(() => runtime[1].ConnectTcpAsync(new IPEndPoint(IPAddress.Loopback, port)).AsTask().WithHangDetector());
        Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode);
        Assert.Equal(0, await runtime[1].InvokeAsync(() => runtime[1].EndpointCount));
    }

    [EpollFact]
    public async Task HandlerThatThrows_ClosesItsConnection_IsReported_AndTheCpuGoesOn()
    {
        await using var runtime = TestUtil.Start(2);
        var reported = new TaskCompletionSource<Exception>(TaskCreationOptions.RunContinuationsAsynchronously);
        runtime.UnhandledException += (_, e) => reported.TrySetResult(e.Exception);
        int calls = 0;
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, async connection =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                await connection.ReceiveAsync(new byte[1]);
                throw new InvalidDataException("handler bug");
            }
            await Echo(new EchoStats())(connection);
        }, new CpuListenerOptions { Cpus = CpuMask.Of(0) });
        using (Socket bad = await ConnectAsync(listener.LocalEndPoint))
        {
            await bad.SendAsync(new byte[1], SocketFlags.None);
            Assert.Equal(0, await bad.ReceiveAsync(new byte[1], SocketFlags.None).WithHangDetector()); // closed by the runtime
        }
        Assert.IsType<InvalidDataException>(await reported.Task.WithHangDetector());
        Assert.Equal(1, await runtime[0].InvokeAsync(() => runtime[0].IoCounters.HandlerErrors));
        // The same CPU serves the next connection.
        using Socket good = await ConnectAsync(listener.LocalEndPoint);
        await good.SendAsync("ok"u8.ToArray(), SocketFlags.None);
        var reply = new byte[2];
        await ReadExactlyAsync(good, reply).WithHangDetector();
        Assert.Equal("ok"u8.ToArray(), reply);
    }

    [EpollFact]
    public async Task UsingAConnectionFromAnotherThread_IsRefused_NamingItsCpu()
    {
        await using var runtime = TestUtil.Start(2);
        var (listener, outcome) = ListenOnce(runtime, connection => Task.FromResult(connection), cpu: 1);
        await using (listener)
        {
            using Socket client = await ConnectAsync(listener.LocalEndPoint);
            CpuConnection connection = await outcome.WithHangDetector();
            var error = Assert.Throws<InvalidOperationException>(() => connection.ReceiveAsync(new byte[1]));
            Assert.Contains("CPU 1", error.Message);
            error = Assert.Throws<InvalidOperationException>(() => connection.SendAsync(new byte[1]));
            Assert.Contains("CPU 1", error.Message);
        }
    }

    [EpollFact]
    public async Task CancelledReceive_EndsWithOperationCanceled_AndTheConnectionStillWorks()
    {
        await using var runtime = TestUtil.Start(2);
        using var cts = new CancellationTokenSource();
        var pending = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var (listener, outcome) = ListenOnce(runtime, async connection =>
        {
            var buffer = new byte[4];
            ValueTask<int> receive = connection.ReceiveAsync(buffer, cts.Token);
            pending.SetResult();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await receive);
            cancelled.SetResult();
            int n = await connection.ReceiveAsync(buffer); // a new receive after the cancelled one
            return n;
        });
        await using (listener)
        {
            using Socket client = await ConnectAsync(listener.LocalEndPoint);
            await pending.Task.WithHangDetector();
            cts.Cancel(); // from this thread: the cancellation goes to the connection's CPU
            await cancelled.Task.WithHangDetector(); // (data sent before it lands would complete the receive instead)
            await client.SendAsync(new byte[] { 9, 9 }, SocketFlags.None);
            Assert.Equal(2, await outcome.WithHangDetector());
        }
    }

    /// <summary>A fresh connection to a fresh listener on <paramref name="cpu"/> echoes: the CPU is alive and serving.</summary>
    private static async Task AssertCpuStillEchoes(CpuRuntime runtime, int cpu)
    {
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, Echo(new EchoStats()), new CpuListenerOptions { Cpus = CpuMask.Of(cpu) });
        using Socket client = await ConnectAsync(listener.LocalEndPoint);
        await client.SendAsync("ping"u8.ToArray(), SocketFlags.None);
        var reply = new byte[4];
        await ReadExactlyAsync(client, reply).WithHangDetector();
        Assert.Equal("ping"u8.ToArray(), reply);
    }
}
