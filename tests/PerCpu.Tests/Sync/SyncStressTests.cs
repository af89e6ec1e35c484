namespace PerCpu.Tests.Sync;

/// <summary>Concurrent masters with overlapping masks, from random CPUs and from outside threads, under a flood of ordinary IPIs.</summary>
[Collection("Stress")]
public sealed class SyncStressTests
{
    private sealed class World(int cpus)
    {
        /// <summary>Which sync currently owns each CPU (0: none); set with CAS inside scopes to catch overlapping syncs.</summary>
        public readonly long[] Owner = new long[cpus];
        /// <summary>Task steps started and ended per CPU (the chain tasks): must not move on a CPU while it is held.</summary>
        public readonly long[] TaskProgress = new long[cpus];
        public long NextSyncId;
        public long Overlaps;
        public long TasksWhileHeld;
        public long FunctionRuns, ExpectedFunctionRuns;
        public long FloodReceived;
        public volatile bool StopFlood;
    }

    private static readonly Action<object?> s_count = static o => Interlocked.Increment(ref ((World)o!).FunctionRuns);
    private static readonly Action<object?, long> s_flood = static (o, _) => Interlocked.Increment(ref ((World)o!).FloodReceived);

    /// <summary>The body of a scope: claim every CPU of the mask in <see cref="World.Owner"/> (a second claimer means two overlapping syncs at once), check the held CPUs' tasks do not move.</summary>
    private static void InScope(World w, CpuMask mask, int self)
    {
        long id = Interlocked.Increment(ref w.NextSyncId);
        Span<long> progress = stackalloc long[w.Owner.Length];
        foreach (int c in mask)
        {
            if (Interlocked.CompareExchange(ref w.Owner[c], id, 0) != 0) Interlocked.Increment(ref w.Overlaps);
            progress[c] = Interlocked.Read(ref w.TaskProgress[c]);
        }
        Thread.SpinWait(50);
        foreach (int c in mask)
        {
            if (c != self && Interlocked.Read(ref w.TaskProgress[c]) != progress[c]) Interlocked.Increment(ref w.TasksWhileHeld);
            Interlocked.CompareExchange(ref w.Owner[c], 0, id);
        }
    }

    private static CpuMask RandomMask(Random random, int cpus)
    {
        // Two to all CPUs: masks overlap often.
        Span<int> ids = stackalloc int[cpus];
        int n = 0;
        for (int c = 0; c < cpus; c++) if (random.Next(2) == 0) ids[n++] = c;
        while (n < 2)
        {
            int c = random.Next(cpus);
            if (ids[..n].IndexOf(c) < 0) ids[n++] = c;
        }
        return CpuMask.Of(ids[..n]);
    }

    private static void OneSync(CpuRuntime runtime, World w, Random random, int round)
    {
        CpuMask mask = RandomMask(random, runtime.CpuCount);
        int self = Cpu.Current?.Id ?? -1;
        Interlocked.Add(ref w.ExpectedFunctionRuns, mask.Count);
        if (round % 2 == 0)
        {
            using (runtime.Interlock(mask, s_count, w)) InScope(w, mask, self);
        }
        else
        {
            runtime.RunOnAll(mask, s_count, w);
        }
    }

    [Fact]
    public async Task OverlappingMasters_AllComplete_NeverOverlap_UnderAFloodOfIpis()
    {
        const int cpus = 4, perCpu = 400, outsideRounds = 150;
        await using var runtime = TestUtil.Start(cpus, o => o.IdleSpin = TimeSpan.FromMicroseconds(5));
        var w = new World(cpus);

        // The flood: two outside threads sending ordinary IPIs to every CPU until the masters are done.
        Task[] flood = Enumerable.Range(0, 2).Select(t => Task.Factory.StartNew(() =>
        {
            for (long i = 0; !w.StopFlood; i++)
                if (!runtime[(int)((i + t) % cpus)].TrySend(s_flood, w)) Thread.Yield();
        }, TaskCreationOptions.LongRunning)).ToArray();

        // Masters on every CPU: a chain of tasks, each one synchronization over a random mask, plus IPIs to the others.
        Task[] chains = new Task[cpus];
        for (int c = 0; c < cpus; c++)
        {
            var random = new Random(1000 + c);
            chains[c] = SyncTestHelpers.RunChain(runtime[c], perCpu, round =>
            {
                Cpu self = Cpu.Current!;
                Interlocked.Increment(ref w.TaskProgress[self.Id]);
                for (int k = 0; k < 8; k++) runtime[random.Next(cpus)].Send(s_flood, w);
                OneSync(runtime, w, random, round);
                Interlocked.Increment(ref w.TaskProgress[self.Id]);
            });
        }

        // And a master that is not a CPU.
        Task outside = Task.Factory.StartNew(() =>
        {
            var random = new Random(7);
            for (int round = 0; round < outsideRounds; round++) OneSync(runtime, w, random, round);
        }, TaskCreationOptions.LongRunning);

        try
        {
            await Progress.Await(Task.WhenAll(chains.Append(outside)),
                () => w.TaskProgress.Sum(p => Interlocked.Read(ref p)) + Interlocked.Read(ref w.FunctionRuns));
        }
        finally
        {
            w.StopFlood = true;
            await Task.WhenAll(flood).WithHangDetector();
        }

        Assert.Equal(0, Interlocked.Read(ref w.Overlaps));
        Assert.Equal(0, Interlocked.Read(ref w.TasksWhileHeld));
        Assert.Equal(Interlocked.Read(ref w.ExpectedFunctionRuns), Interlocked.Read(ref w.FunctionRuns));
        Assert.True(Interlocked.Read(ref w.FloodReceived) > 0);
        Assert.Equal(0, runtime.GetStatistics().Errors);
    }
}
