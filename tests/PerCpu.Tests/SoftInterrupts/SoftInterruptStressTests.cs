namespace PerCpu.Tests.SoftInterrupts;

/// <summary>Real threads racing: disposal against schedules from everywhere, and no lost remote schedule.</summary>
[Collection("Stress")]
public sealed class SoftInterruptStressTests
{
    /// <summary>Shared by the hammering handlers and threads; <see cref="Victim"/> is replaced each round.</summary>
    private sealed class Arena
    {
        public volatile SoftInterrupt? Victim;
        public volatile bool Stop;
        public long Runs;
        public long Refused;
        public CpuRuntime Runtime = null!;
        public SoftInterrupt[] Drivers = [];
    }

    /// <summary>One driver per CPU, at the lowest level, rescheduling itself: it schedules the victim here and on the other CPU.</summary>
    private static readonly Action<object?> s_driver = static a =>
    {
        var arena = (Arena)a!;
        if (arena.Stop) return;
        Cpu self = Cpu.Current!;
        SoftInterrupt? victim = arena.Victim;
        if (victim != null)
        {
            try
            {
                victim.Schedule();
                victim.ScheduleOn(arena.Runtime[(self.Id + 1) % arena.Runtime.CpuCount]);
            }
            catch (ObjectDisposedException)
            {
                Interlocked.Increment(ref arena.Refused);
            }
        }
        arena.Drivers[self.Id].Schedule();
    };

    private static readonly Action<object?> s_victimSync = static a => Interlocked.Increment(ref ((Arena)a!).Runs);

    private static readonly Func<object?, ValueTask> s_victimAsync = static async a =>
    {
        Interlocked.Increment(ref ((Arena)a!).Runs);
        await Task.Yield();
        Interlocked.Increment(ref ((Arena)a!).Runs);
    };

    [Fact]
    public async Task DisposeRacingWithSchedulesFromEverywhere_NeverRunsAfterItReturns()
    {
        await using var runtime = TestUtil.Start(2, o => o.IdleSpin = TimeSpan.FromMicroseconds(5));
        var arena = new Arena { Runtime = runtime };
        arena.Drivers = [.. runtime.Cpus.Select(_ => runtime.Establish(SoftLevel.Clock, s_driver, arena))];
        for (int i = 0; i < arena.Drivers.Length; i++) arena.Drivers[i].ScheduleOn(runtime[i]);
        // An outside thread schedules the victim too (through the inboxes).
        Task outside = Task.Factory.StartNew(() =>
        {
            int k = 0;
            while (!arena.Stop)
            {
                SoftInterrupt? victim = arena.Victim;
                if (victim == null) continue;
                try { victim.ScheduleOn(runtime[k++ & 1]); }
                catch (ObjectDisposedException) { Interlocked.Increment(ref arena.Refused); }
            }
        }, TaskCreationOptions.LongRunning);

        const int Rounds = 100;
        try
        {
            for (int round = 0; round < Rounds; round++)
            {
                // Sync and async victims alternate; each reuses the slot the last one freed while its late messages may still travel.
                SoftInterrupt victim = round % 2 == 0
                    ? runtime.Establish(SoftLevel.Net, s_victimSync, arena)
                    : runtime.Establish(SoftLevel.Net, s_victimAsync, arena);
                long start = Volatile.Read(ref arena.Runs);
                arena.Victim = victim;
                Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref arena.Runs) - start >= 20, TestUtil.Hang), "Hang detector: the victim never ran");
                if (round % 3 == 0) victim.Dispose();
                else if (round % 3 == 1) await victim.DisposeAsync();
                else if (victim.SyncHandler != null) await runtime[round & 1].InvokeAsync(victim.Dispose); // from a CPU, while the drivers run there
                else await runtime[round & 1].InvokeAsync(() => victim.DisposeAsync()); // an async run may be blocked there: Dispose would refuse
                long atReturn = Volatile.Read(ref arena.Runs);
                // Late IPIs and stale queue entries of the victim are dropped: two rounds through every CPU change nothing.
                for (int pass = 0; pass < 2; pass++)
                    foreach (Cpu cpu in runtime.Cpus) await cpu.InvokeAsync(static () => { }).AsTask().WithHangDetector();
                Assert.Equal(atReturn, Volatile.Read(ref arena.Runs));
                arena.Victim = null;
            }
        }
        finally
        {
            arena.Stop = true; // the drivers stop rescheduling themselves, so the runtime can quiesce even after a failure
        }
        await outside.WithHangDetector();
        Assert.True(Volatile.Read(ref arena.Refused) > 0); // the race was real: schedules hit disposed handles
        foreach (SoftInterrupt driver in arena.Drivers) driver.Dispose();
    }

    private sealed class Requests(int cpus)
    {
        public readonly long[] Requested = new long[cpus * 16];
        public readonly long[] Seen = new long[cpus * 16];
        public long Runs;
    }

    /// <summary>
    /// Every ScheduleOn is followed by a run that starts after it and sees what the caller wrote before it (the
    /// coalescing word's fences): after the senders stop, each CPU's last run has seen the last request.
    /// </summary>
    [Fact]
    public async Task ScheduleOnFromManySenders_NoRequestIsLost()
    {
        await using var runtime = TestUtil.Start(2, o => o.IdleSpin = TimeSpan.FromMicroseconds(5));
        var requests = new Requests(runtime.CpuCount);
        using SoftInterrupt si = runtime.Establish(SoftLevel.Net, static r =>
        {
            var req = (Requests)r!;
            int k = Cpu.Current!.Id * 16;
            req.Seen[k] = Volatile.Read(ref req.Requested[k]);
            Interlocked.Increment(ref req.Runs);
        }, requests);
        const int PerSender = 200_000;
        Action<int> send = seed =>
        {
            for (int i = 0; i < PerSender; i++)
            {
                int target = (i + seed) & 1;
                Interlocked.Increment(ref requests.Requested[target * 16]);
                si.ScheduleOn(runtime[target]);
            }
        };
        Task[] senders =
        [
            Task.Factory.StartNew(() => send(0), TaskCreationOptions.LongRunning),
            Task.Factory.StartNew(() => send(1), TaskCreationOptions.LongRunning),
            runtime[0].InvokeAsync(() => send(0)).AsTask(),
            runtime[1].InvokeAsync(() => send(1)).AsTask(),
        ];
        await Progress.Await(Task.WhenAll(senders), () => Interlocked.Read(ref requests.Requested[0]) + Interlocked.Read(ref requests.Requested[16]));
        for (int k = 0; k < runtime.CpuCount; k++)
        {
            long requested = Volatile.Read(ref requests.Requested[k * 16]);
            Assert.Equal(2L * PerSender, requested);
            // With a lost request the last run never sees the final count: nothing moves any more, and the wait fails.
            int cpu = k;
            await Progress.WaitUntil(() => Volatile.Read(ref requests.Seen[cpu * 16]) == requested ? 1 : -Interlocked.Read(ref requests.Runs), 1,
                what: $"CPU {k}: the handler sees request {requested} (a ScheduleOn lost if it never does)");
        }
        Assert.InRange(Volatile.Read(ref requests.Runs), 1, 4L * PerSender);
    }
}
