using System.Net.Sockets;
using PerCpu.Net;
using PerCpu.Tests.Io;
using static PerCpu.Tests.Net.NetTestUtil;

namespace PerCpu.Tests.Net;

/// <summary>
/// Issue 12: backpressure (a slow reader makes SendAsync wait), the runtime's disposal (stops accepting, ends
/// receives, loses no byte handed to SendAsync), idle connections cost nothing, steady-state I/O allocates nothing,
/// and a CPU parked in its reactor never loses a wake-up.
/// </summary>
[Collection("Stress")]
public sealed class ConnectionLifetimeTests
{
    [EpollFact]
    public async Task SlowReader_MakesSendAsyncWait_AndEverythingArrivesInOrder()
    {
        const int Chunk = 64 * 1024, Chunks = 256; // 16 MiB: far more than the socket buffers hold
        await using var runtime = TestUtil.Start(2);
        long handedOver = 0;
        var sendPending = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, async connection =>
        {
            var chunk = new byte[Chunk];
            for (int i = 0; i < Chunks; i++)
            {
                for (int k = 0; k < Chunk; k++) chunk[k] = Pattern(0, (long)i * Chunk + k);
                ValueTask send = connection.SendAsync(chunk);
                if (!send.IsCompleted) sendPending.TrySetResult();
                await send; // the same buffer is refilled next: the send must have taken every byte
                Volatile.Write(ref handedOver, (long)(i + 1) * Chunk);
            }
        }, new CpuListenerOptions { Cpus = CpuMask.Of(0) });
        using Socket client = await ConnectAsync(listener.LocalEndPoint);
        client.ReceiveBufferSize = 64 * 1024;
        // Nobody reads: the server's sends stop completing once the kernel buffers are full.
        await sendPending.Task.WithHangDetector();
        long stalledAt = Volatile.Read(ref handedOver);
        Assert.True(stalledAt < (long)Chunk * Chunks, "every send completed although the peer read nothing");
        // Now read everything, slowly at first, and check the order.
        var buffer = new byte[Chunk];
        long offset = 0;
        await Progress.Await(Task.Run(async () =>
        {
            while (offset < (long)Chunk * Chunks)
            {
                int n = await client.ReceiveAsync(buffer, SocketFlags.None);
                Assert.NotEqual(0, n);
                for (int k = 0; k < n; k++)
                    if (buffer[k] != Pattern(0, offset + k)) Assert.Fail($"byte {offset + k} out of order");
                offset += n;
            }
        }), () => Volatile.Read(ref offset));
        Assert.True(await runtime[0].InvokeAsync(() => runtime[0].IoCounters.SendWaits) > 0);
    }

    [EpollTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Dispose_StopsAccepting_EndsReceives_AndLosesNoByteHandedToSendAsync(bool socketBackend)
    {
        const int Reply = 16 * 1024 * 1024; // more than the kernel buffers usually hold: the send is likely still pending
        var runtime = TestUtil.Start(2, o => o.SocketBackend = socketBackend);
        var errors = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        runtime.UnhandledException += (_, e) => errors.Enqueue(e.Exception);
        int handlersStarted = 0, handlersFinished = 0;
        var replyHanded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        CpuListener listener = runtime.ListenTcp(AnyLoopback, async connection =>
        {
            Interlocked.Increment(ref handlersStarted);
            try
            {
                var buffer = new byte[16];
                int n = await connection.ReceiveAsync(buffer);
                if (n == 1 && buffer[0] == (byte)'B')
                {
                    // A big reply handed over while the peer does not read yet: disposal must not cut it.
                    var reply = new byte[Reply];
                    for (int i = 0; i < reply.Length; i++) reply[i] = Pattern(7, i);
                    ValueTask send = connection.SendAsync(reply);
                    replyHanded.TrySetResult();
                    await send;
                    return;
                }
                while (await connection.ReceiveAsync(buffer) > 0) { } // idle until the runtime ends the receive
            }
            finally
            {
                Interlocked.Increment(ref handlersFinished);
            }
        });
        var idle = new List<Socket>();
        for (int i = 0; i < 20; i++) idle.Add(await ConnectAsync(listener.LocalEndPoint));
        await idle[0].SendAsync(new byte[] { (byte)'x', (byte)'y' }, SocketFlags.None);
        using Socket big = await ConnectAsync(listener.LocalEndPoint);
        big.ReceiveBufferSize = 64 * 1024;
        await big.SendAsync(new byte[] { (byte)'B' }, SocketFlags.None);
        await replyHanded.Task.WithHangDetector();
        // Every connection accepted (the big reply's handler may already have finished: the kernel can buffer it all).
        await Progress.Until(() => Volatile.Read(ref handlersStarted) == 21, () => Volatile.Read(ref handlersStarted),
            () => $"all connections accepted; {listener.ConnectionCount} open, {Volatile.Read(ref handlersFinished)} handlers finished, errors: {string.Join(" | ", errors)}");

        Task disposal = runtime.DisposeAsync().AsTask();
        // The big reply arrives whole, then the connection closes.
        var got = new byte[Reply];
        long read = 0;
        await Progress.Await(ReadExactlyAsync(big, got, n => Interlocked.Add(ref read, n)), () => Interlocked.Read(ref read));
        for (int i = 0; i < got.Length; i++)
            if (got[i] != Pattern(7, i)) Assert.Fail($"reply byte {i} differs");
        await Progress.Await(disposal, () => Volatile.Read(ref handlersFinished));
        Assert.Equal(21, Volatile.Read(ref handlersFinished));
        Assert.Equal(0, await big.ReceiveAsync(new byte[1], SocketFlags.None).WithHangDetector());
        foreach (Socket s in idle)
        {
            Assert.Equal(0, await s.ReceiveAsync(new byte[1], SocketFlags.None).WithHangDetector()); // closed by the runtime
            s.Dispose();
        }
        // No longer accepting.
        await Assert.ThrowsAnyAsync<SocketException>(() => ConnectAsync(listener.LocalEndPoint));
        Assert.Equal(0, listener.ConnectionCount);
    }

    [EpollFact]
    public async Task ThousandIdleConnections_LeaveTheCpusAsleep()
    {
        await using var runtime = TestUtil.Start(2, o => { o.IdleSpin = TimeSpan.Zero; o.StallThreshold = TimeSpan.Zero; });
        var stats = new EchoStats();
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, Echo(stats));
        var clients = new List<Socket>();
        try
        {
            for (int i = 0; i < 1000; i++) clients.Add(await ConnectAsync(listener.LocalEndPoint));
            await Progress.Until(() => listener.ConnectionCount == 1000, () => listener.ConnectionCount, "1000 connections open");
            await Progress.Until(() => Interlocked.Read(ref stats.Connections) == 1000, () => Interlocked.Read(ref stats.Connections), "1000 handlers waiting");
            foreach (Cpu cpu in runtime.Cpus)
                await Progress.Until(() => cpu.IsAsleep, () => 0, $"CPU {cpu.Id} asleep with its connections");
            long passes0 = Volatile.Read(ref runtime[0].Own.PassStamp), passes1 = Volatile.Read(ref runtime[1].Own.PassStamp);
            Thread.Sleep(200); // a measurement window: idle connections must not make the CPUs run
            Assert.Equal(passes0, Volatile.Read(ref runtime[0].Own.PassStamp));
            Assert.Equal(passes1, Volatile.Read(ref runtime[1].Own.PassStamp));
            // And they still serve: one echo wakes its CPU from epoll_wait.
            await clients[500].SendAsync("z"u8.ToArray(), SocketFlags.None);
            var reply = new byte[1];
            await ReadExactlyAsync(clients[500], reply).WithHangDetector();
        }
        finally
        {
            foreach (Socket s in clients) s.Dispose();
        }
    }

    [EpollFact]
    public async Task SteadyStateReceiveAndSend_AllocateNothing()
    {
        await using var runtime = TestUtil.Start(2);
        const int Warmup = 200, Window = 1000, Windows = 3;
        var allocated = new long[Windows];
        var reported = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, async connection =>
        {
            var buffer = new byte[64];
            long before = 0;
            for (int i = 0; i < Warmup + Window * Windows; i++)
            {
                if (i >= Warmup && (i - Warmup) % Window == 0)
                {
                    long now = GC.GetAllocatedBytesForCurrentThread();
                    if (i > Warmup) allocated[(i - Warmup) / Window - 1] = now - before;
                    before = now;
                }
                int n = await connection.ReceiveAsync(buffer);
                if (n == 0) return;
                await connection.SendAsync(buffer.AsMemory(0, n));
            }
            // Everything above ran on this CPU's thread: the awaits, softnet, the reactor's polls and parks included.
            allocated[Windows - 1] = GC.GetAllocatedBytesForCurrentThread() - before;
            reported.SetResult();
        }, new CpuListenerOptions { Cpus = CpuMask.Of(1) });
        using Socket client = await ConnectAsync(listener.LocalEndPoint);
        var one = new byte[1];
        long done = 0;
        await Progress.Await(Task.Run(async () =>
        {
            for (int i = 0; i < Warmup + Window * Windows; i++)
            {
                await client.SendAsync(one, SocketFlags.None);
                await ReadExactlyAsync(client, one);
                done++;
            }
        }), () => Volatile.Read(ref done));
        await reported.Task.WithHangDetector();
        // An allocation per operation shows in every window (at least 32 B x 1000). A path the CPU takes for the first
        // time only under load (a thread-static's first touch by a P/Invoke's last-error handling: 32 B once, seen under
        // two busy loops) may land in one window: so the steady state is the quietest window, and it must be 0.
        Assert.True(allocated.Min() == 0, $"bytes allocated per window of {Window} round trips: {string.Join(", ", allocated)}");
    }

    [EpollFact]
    public async Task CpusParkedInTheirReactors_LoseNoWakeUp_UnderAPingPong()
    {
        // Both CPUs own a listening socket, so both park in epoll_wait; no spin, so nearly every message finds its
        // target parked and must wake it through the eventfd.
        await using var runtime = TestUtil.Start(2, o => { o.IdleSpin = TimeSpan.Zero; o.StallThreshold = TimeSpan.Zero; });
        await using CpuListener listener = runtime.ListenTcp(AnyLoopback, _ => ValueTask.CompletedTask);
        foreach (Cpu cpu in runtime.Cpus)
            await Progress.Until(() => cpu.IsAsleep, () => 0, $"CPU {cpu.Id} asleep in its reactor");
        const long Rounds = 20_000;
        long count = 0;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Action<object?, long>? bounce = null;
        bounce = (_, n) =>
        {
            Volatile.Write(ref count, n);
            if (n == Rounds) { done.TrySetResult(); return; }
            runtime[1 - Cpu.Current!.Id].Send(bounce!, null, n + 1);
        };
        runtime[0].Send(bounce, null, 1);
        await Progress.Await(done.Task, () => Volatile.Read(ref count));
        Assert.True(runtime[0].Counters.WakesReceived + runtime[1].Counters.WakesReceived > 0);
    }
}
