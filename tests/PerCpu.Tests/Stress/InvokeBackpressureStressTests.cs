namespace PerCpu.Tests.Stress;

/// <summary>
/// Outside callers flood a CPU with a tiny inbox through InvokeAsync, cancelling some calls at arbitrary moments (while
/// they wait for room, after they were accepted, after they ran). Whatever the interleaving, a call that completed
/// ran exactly once, and a call that was cancelled never ran.
/// </summary>
[Collection("Stress")]
public sealed class InvokeBackpressureStressTests
{
    private const int Callers = 4, CallsPerCaller = 3_000;

    [Fact]
    public async Task Flood_WithRandomCancellation_CompletedRanOnce_CancelledNeverRan()
    {
        await using var runtime = TestUtil.Start(2, o => o.InboxCapacity = 16);
        var runs = new int[Callers * CallsPerCaller]; // written only on CPU 1
        long completed = 0;
        // CPU 1 is held until calls wait for room (4 callers × 32 calls in flight against 16 slots): the waiting path
        // is exercised whatever the timing; after that, the flood runs free.
        using var gate = new ManualResetEventSlim();
        TestUtil.Block(runtime[1], gate);
        var callers = new Task[Callers];
        for (int c = 0; c < Callers; c++)
        {
            int caller = c;
            callers[c] = Task.Run(async () =>
            {
                var random = new Random(caller);
                var pending = new List<(int Id, ValueTask Call, CancellationTokenSource Cts)>();
                for (int i = 0; i < CallsPerCaller; i++)
                {
                    int id = caller * CallsPerCaller + i;
                    var cts = new CancellationTokenSource();
                    pending.Add((id, runtime[1].InvokeAsync(static s => { s.Runs[s.Id]++; }, (Runs: runs, Id: id), cts.Token), cts));
                    if (random.Next(3) == 0) cts.Cancel();
                    if (pending.Count == 32 || i == CallsPerCaller - 1)
                    {
                        foreach ((int callId, ValueTask call, CancellationTokenSource source) in pending)
                        {
                            try
                            {
                                await call;
                                Interlocked.Increment(ref completed);
                            }
                            catch (OperationCanceledException)
                            {
                                runs[callId] += 1000; // marks "cancelled": must have stayed 0 before (checked on CPU 1 below)
                            }
                            source.Dispose();
                        }
                        pending.Clear();
                    }
                }
            });
        }
        await Progress.Until(() => runtime[1].Inbox.HasRoomWaiters, () => runtime[1].Inbox.EnqueuedCount, "calls wait for room in CPU 1's inbox");
        gate.Set();
        await Progress.Await(Task.WhenAll(callers), Progress.Of(runtime));
        // Every call has completed; read the counts on CPU 1, after everything queued before this call.
        int[] seen = await runtime[1].InvokeAsync(static r => r.ToArray(), runs).AsTask().WithHangDetector();
        Assert.All(seen, n => Assert.True(n == 1 || n == 1000, $"a call ran {n % 1000} times ({(n >= 1000 ? "cancelled" : "completed")})"));
        Assert.Equal(Volatile.Read(ref completed), seen.Count(n => n == 1));
    }
}
