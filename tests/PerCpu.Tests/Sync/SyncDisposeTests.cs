namespace PerCpu.Tests.Sync;

/// <summary>Disposing the runtime while a synchronization is in progress ends cleanly and loses nothing.</summary>
public sealed class SyncDisposeTests
{
    /// <summary>
    /// An outside master holds CPU 0 and 1 in a scope; a task is queued on a held CPU; the runtime is disposed. The
    /// disposal cannot finish while a CPU is held (the hold is accepted work), new outside synchronizations are refused,
    /// and once the scope is closed, from another thread, disposal completes and the queued task has run.
    /// </summary>
    [Fact]
    public async Task DisposeWhileAScopeIsOpen_WaitsForIt_AndRunsWhatWasQueued()
    {
        var runtime = TestUtil.Start(2);
        var queuedRan = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        CpuSyncScope scope = await Task.Run(() => runtime.Interlock(runtime.AllCpus)).WithHangDetector();
        // Once the remote1 messages have returned nothing else is pending: only the holds keep the runtime from quiescence.
        SyncTestHelpers.SpinUntil(() => runtime.Cpus.All(c => c.Inbox.Executed == c.Inbox.EnqueuedCount), "remote1 has returned everywhere");
        Assert.False(runtime.IsQuiescent(), "an open scope must count as accepted work");

        runtime[1].Post(() => queuedRan.TrySetResult());
        // The post's IPI has run once an IPI sent after it through the same inbox has (held CPUs still run IPIs).
        await runtime[1].InvokeAsync(static () => { }).AsTask().WithHangDetector();

        Task dispose = Task.Run(() => runtime.DisposeAsync().AsTask());
        SyncTestHelpers.SpinUntil(() => runtime.IsDisposed, "disposal begins");
        Assert.Throws<ObjectDisposedException>(() => runtime.Interlock(CpuMask.Of(0)));
        // Whatever the timing, disposal cannot have completed: CPU 0 and 1 are still held.
        Assert.False(dispose.IsCompleted, "disposal completed while CPUs were held by an open scope");
        Assert.False(queuedRan.Task.IsCompleted, "a task ran on a held CPU");

        await Task.Run(scope.Dispose).WithHangDetector();
        await dispose.WithHangDetector();
        Assert.True(queuedRan.Task.IsCompletedSuccessfully);
    }

    /// <summary>
    /// Every CPU runs a chain of synchronizations over random masks (RunOnAll and scopes); the runtime is disposed in the
    /// middle. Disposal completes, and every synchronization that was started has completed with every function run.
    /// </summary>
    [Fact]
    public async Task DisposeWhileCpusAreSynchronizing_EndsCleanly_AndCompletesEverySync()
    {
        const int cpus = 3, iterations = 150;
        var runtime = TestUtil.Start(cpus);
        long expectedRuns = 0, runs = 0, completed = 0;
        Action<object?> count = static o => Interlocked.Increment(ref ((long[])o!)[0]);
        var counter = new long[1];
        var chains = new Task[cpus];
        for (int c = 0; c < cpus; c++)
        {
            var random = new Random(c);
            chains[c] = SyncTestHelpers.RunChain(runtime[c], iterations, i =>
            {
                CpuMask mask = CpuMask.Of(random.Next(cpus), random.Next(cpus));
                Interlocked.Add(ref expectedRuns, mask.Count);
                if ((i & 1) == 0) runtime.RunOnAll(mask, count, counter);
                else using (runtime.Interlock(mask, count, counter)) { }
                Interlocked.Increment(ref completed);
            });
        }
        SyncTestHelpers.SpinUntil(() => Interlocked.Read(ref completed) >= cpus, "the chains are running");
        Func<long> progress = () => Interlocked.Read(ref completed) + Interlocked.Read(ref counter[0]);
        await Progress.Await(runtime.DisposeAsync().AsTask(), progress);
        // Each chain step posts the next: the chains were accepted work, so disposal ran them to the end.
        await Progress.Await(Task.WhenAll(chains), progress);
        runs = Interlocked.Read(ref counter[0]);
        Assert.Equal(cpus * iterations, Interlocked.Read(ref completed));
        Assert.Equal(Interlocked.Read(ref expectedRuns), runs);
    }
}
