namespace PerCpu.Tests.Core;

[Collection("Stress")]
public sealed class DisposeTests
{
    private sealed class Ledger
    {
        public long Accepted;
        public long Ran;
    }

    /// <summary>
    /// Outside threads flood the CPUs while the runtime is disposed; every send that returned (was accepted) must
    /// have run when DisposeAsync completes, including the messages those functions sent on in turn.
    /// </summary>
    [Fact]
    public async Task Dispose_RunsEverythingAccepted_AndRefusesTheRest()
    {
        for (int round = 0; round < 5; round++)
        {
            var runtime = TestUtil.Start(3, o => o.InboxCapacity = 64);
            var ledger = new Ledger();
            using var go = new ManualResetEventSlim();
            var senders = new Task[3];
            for (int t = 0; t < senders.Length; t++)
            {
                int seed = t;
                senders[t] = Task.Factory.StartNew(() =>
                {
                    go.Wait();
                    for (long i = 0; ; i++)
                    {
                        try
                        {
                            // Each message forwards itself to the next CPU twice: work accepted during shutdown fans out.
                            runtime[(int)((i + seed) % 3)].Send(static (o, hops) =>
                            {
                                var l = (Ledger)o!;
                                Interlocked.Increment(ref l.Ran);
                                if (hops > 0)
                                {
                                    Interlocked.Increment(ref l.Accepted);
                                    Cpu next = Cpu.Current!.Runtime[(Cpu.Current.Id + 1) % 3];
                                    next.Send(static (o2, h) =>
                                    {
                                        Interlocked.Increment(ref ((Ledger)o2!).Ran);
                                    }, l, hops - 1);
                                }
                            }, ledger, 1);
                            Interlocked.Increment(ref ledger.Accepted);
                        }
                        catch (ObjectDisposedException)
                        {
                            return;
                        }
                    }
                }, TaskCreationOptions.LongRunning);
            }
            go.Set();
            Thread.SpinWait(200_000 * (round + 1));
            await Progress.Await(runtime.DisposeAsync().AsTask(), () => Volatile.Read(ref ledger.Ran));
            await Task.WhenAll(senders).WithHangDetector(); // each ends at its next send: refused
            Assert.True(ledger.Accepted > 0);
            Assert.Equal(Volatile.Read(ref ledger.Accepted), Volatile.Read(ref ledger.Ran));
        }
    }

    [Fact]
    public async Task Dispose_WaitsForAsyncCallsInFlight()
    {
        var runtime = TestUtil.Start(2);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ValueTask<int> call = runtime[1].InvokeAsync(async () =>
        {
            await release.Task;
            return Cpu.Current!.Id;
        });
        // Make sure the call has started on CPU 1 before disposing.
        await runtime[1].InvokeAsync(static () => { }).AsTask().WithHangDetector();
        Task dispose = runtime.DisposeAsync().AsTask();
        Assert.False(dispose.IsCompleted);
        release.SetResult();
        await dispose.WithHangDetector();
        Assert.Equal(1, await call.AsTask().WithHangDetector());
    }

    [Fact]
    public async Task PostsAfterStop_RunOnTheThreadPool()
    {
        var runtime = TestUtil.Start(1);
        SynchronizationContext context = runtime[0].SynchronizationContext;
        await runtime.DisposeAsync();
        var ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        context.Post(_ => ran.SetResult(), null);
        await ran.Task.WithHangDetector();
    }
}
