namespace PerCpu.Tests.Sync;

/// <summary>RunOnAll / RunOnAllAsync: who runs the function, errors, nesting, bad input, allocation.</summary>
public sealed class RunOnAllTests
{
    private sealed class Boom(int cpu) : Exception($"boom on CPU {cpu}")
    {
        public int Cpu { get; } = cpu;
    }

    private static readonly Action<object?> s_record = static o => Interlocked.Increment(ref ((int[])o!)[Cpu.Current!.Id]);

    /// <summary>Every CPU of the mask runs the function exactly once, the caller's CPU only when it is in the mask; others never.</summary>
    [Fact]
    public async Task RunsOncePerCpuOfTheMask_FromEveryKindOfCaller()
    {
        await using var runtime = TestUtil.Start(4);
        var mask = CpuMask.Of(1, 3);

        var fromOutside = new int[4];
        runtime.RunOnAll(mask, s_record, fromOutside);
        Assert.Equal(new[] { 0, 1, 0, 1 }, fromOutside);

        var fromAsync = new int[4];
        await runtime.RunOnAllAsync(mask, s_record, fromAsync).AsTask().WithHangDetector();
        Assert.Equal(new[] { 0, 1, 0, 1 }, fromAsync);

        var fromCpuInMask = new int[4];
        await runtime[1].InvokeAsync(() => runtime.RunOnAll(mask, s_record, fromCpuInMask)).AsTask().WithHangDetector();
        Assert.Equal(new[] { 0, 1, 0, 1 }, fromCpuInMask);

        var fromCpuOutsideMask = new int[4];
        await runtime[0].InvokeAsync(() => runtime.RunOnAll(mask, s_record, fromCpuOutsideMask)).AsTask().WithHangDetector();
        Assert.Equal(new[] { 0, 1, 0, 1 }, fromCpuOutsideMask);

        var asyncFromCpu = new int[4];
        await runtime[2].InvokeAsync(() => runtime.RunOnAllAsync(runtime.AllCpus, s_record, asyncFromCpu)).AsTask().WithHangDetector();
        Assert.Equal(new[] { 1, 1, 1, 1 }, asyncFromCpu);

        var empty = new int[4];
        runtime.RunOnAll(CpuMask.Empty, s_record, empty);
        await runtime.RunOnAllAsync(CpuMask.Empty, s_record, empty).AsTask().WithHangDetector();
        Assert.Equal(new[] { 0, 0, 0, 0 }, empty);
    }

    /// <summary>A function that throws on one CPU: the caller gets that very exception, and no CPU is left held.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task OneThrow_ReachesTheCaller_AndNoCpuStaysHeld(bool masterIsCpu)
    {
        await using var runtime = TestUtil.Start(3);
        Action<object?> throwOn1 = static _ =>
        {
            if (Cpu.Current!.Id == 1) throw new Boom(1);
        };
        Exception? caught = null;
        void Run()
        {
            try
            {
                runtime.RunOnAll(runtime.AllCpus, throwOn1);
            }
            catch (Exception e)
            {
                caught = e;
            }
        }
        if (masterIsCpu) await runtime[0].InvokeAsync(Run).AsTask().WithHangDetector();
        else Run();
        Assert.Equal(1, Assert.IsType<Boom>(caught).Cpu);
        await AssertNoCpuHeld(runtime);
    }

    /// <summary>A function that throws on several CPUs (the master's own included): an AggregateException, one inner exception per CPU, by id.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SeveralThrows_AggregateInCpuOrder_AndNoCpuStaysHeld(bool masterIsCpu)
    {
        await using var runtime = TestUtil.Start(3);
        Action<object?> throwEverywhere = static _ => throw new Boom(Cpu.Current!.Id);
        Exception? caught = null;
        void Run()
        {
            try
            {
                runtime.RunOnAll(runtime.AllCpus, throwEverywhere);
            }
            catch (Exception e)
            {
                caught = e;
            }
        }
        if (masterIsCpu) await runtime[2].InvokeAsync(Run).AsTask().WithHangDetector();
        else Run();
        var aggregate = Assert.IsType<AggregateException>(caught);
        Assert.Equal(new[] { 0, 1, 2 }, aggregate.InnerExceptions.Select(e => Assert.IsType<Boom>(e).Cpu).ToArray());
        await AssertNoCpuHeld(runtime);

        // The async form carries the same exception to its awaiter.
        var asyncAggregate = await Assert.ThrowsAsync<AggregateException>(() => runtime.RunOnAllAsync(runtime.AllCpus, throwEverywhere).AsTask().WithHangDetector());
        Assert.Equal(3, asyncAggregate.InnerExceptions.Count);
        await AssertNoCpuHeld(runtime);
        Assert.Equal(0, runtime.GetStatistics().Errors); // reported to the caller, not as unhandled
    }

    /// <summary>A task on every CPU runs (no CPU is held), and a new synchronization over all of them completes.</summary>
    private static async Task AssertNoCpuHeld(CpuRuntime runtime)
    {
        foreach (Cpu cpu in runtime.Cpus)
        {
            var ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            cpu.Post(() => ran.TrySetResult());
            await ran.Task.WithHangDetector();
        }
        var runs = new int[runtime.CpuCount];
        runtime.RunOnAll(runtime.AllCpus, s_record, runs);
        Assert.All(runs, r => Assert.Equal(1, r));
    }

    /// <summary>Nested interlock from inside a scope: a clear exception, from a CPU and from an outside thread, whatever the masks.</summary>
    [Fact]
    public async Task NestedInterlock_InsideAScope_Throws()
    {
        await using var runtime = TestUtil.Start(3);

        using (runtime.Interlock(CpuMask.Of(0, 1)))
        {
            var e = Assert.Throws<InvalidOperationException>(() => runtime.Interlock(CpuMask.Of(1)));
            Assert.Contains("already inside a cpusync scope", e.Message);
            Assert.Throws<InvalidOperationException>(() => runtime.RunOnAll(CpuMask.Of(2), static _ => { })); // disjoint: still refused
            await Assert.ThrowsAsync<InvalidOperationException>(() => runtime.RunOnAllAsync(CpuMask.Of(2), static _ => { }).AsTask());
        }

        string message = await runtime[2].InvokeAsync(() =>
        {
            using (runtime.Interlock(CpuMask.Of(0, 1)))
                return Assert.Throws<InvalidOperationException>(() => runtime.RunOnAll(CpuMask.Of(1), static _ => { })).Message;
        }).AsTask().WithHangDetector();
        Assert.Contains("CPU 2 is already inside a cpusync scope", message);
        await AssertNoCpuHeld(runtime);
    }

    /// <summary>
    /// Interlock or RunOnAll from inside a cpusync function: each CPU that tries gets InvalidOperationException (the
    /// master's own CPU too), which reaches the caller; nothing hangs.
    /// </summary>
    [Fact]
    public async Task InterlockInsideACpuSyncFunction_Throws_AndReachesTheCaller()
    {
        await using var runtime = TestUtil.Start(3);
        Action<object?> nested = o => ((CpuRuntime)o!).RunOnAll(CpuMask.Of(Cpu.Current!.Id), static _ => { });

        var fromOutside = Assert.Throws<AggregateException>(() => runtime.RunOnAll(runtime.AllCpus, nested, runtime));
        Assert.Equal(3, fromOutside.InnerExceptions.Count);
        Assert.All(fromOutside.InnerExceptions, e => Assert.Contains("cpusync function", Assert.IsType<InvalidOperationException>(e).Message));

        Exception? fromCpu = await runtime[0].InvokeAsync(() =>
        {
            try
            {
                using (runtime.Interlock(CpuMask.Of(0, 1), o => ((CpuRuntime)o!).Interlock(runtime.AllCpus).Dispose(), runtime)) { }
                return null;
            }
            catch (Exception e)
            {
                return e;
            }
        }).AsTask().WithHangDetector();
        var aggregate = Assert.IsType<AggregateException>(fromCpu);
        Assert.Equal(2, aggregate.InnerExceptions.Count);
        Assert.All(aggregate.InnerExceptions, e => Assert.IsType<InvalidOperationException>(e));
        Assert.Contains("CPU 0 is already inside a cpusync scope", aggregate.InnerExceptions[0].Message); // the master, in its own function
        Assert.Contains("CPU 1 is running a cpusync function", aggregate.InnerExceptions[1].Message);
        await AssertNoCpuHeld(runtime);
    }

    /// <summary>An IPI that runs on a held CPU may not start a synchronization (it could wait for its own master): a clear exception.</summary>
    [Fact]
    public async Task InterlockFromAnIpiOnAHeldCpu_Throws()
    {
        await using var runtime = TestUtil.Start(2);
        string message;
        using (runtime.Interlock(CpuMask.Of(1)))
        {
            message = await runtime[1].InvokeAsync(() =>
                Assert.Throws<InvalidOperationException>(() => runtime.RunOnAll(runtime.AllCpus, static _ => { })).Message).AsTask().WithHangDetector();
        }
        Assert.Contains("CPU 1 is held by another master", message);
        await AssertNoCpuHeld(runtime);
    }

    [Fact]
    public async Task BadInput_GetsExceptionsThatSayWhatToDo()
    {
        var runtime = TestUtil.Start(2);
        var tooBig = Assert.Throws<ArgumentException>(() => runtime.Interlock(CpuMask.Of(0, 5)));
        Assert.Contains("CPUs 0 to 1", tooBig.Message);
        Assert.Throws<ArgumentException>(() => runtime.RunOnAll(CpuMask.Of(2), static _ => { }));
        Assert.Throws<ArgumentNullException>(() => runtime.RunOnAll(runtime.AllCpus, null!));
        Assert.Throws<ArgumentNullException>(() => runtime.Interlock(runtime.AllCpus, null!));

        // A scope opened on a CPU must be closed there.
        CpuSyncScope scope = await runtime[0].InvokeAsync(() => runtime.Interlock(CpuMask.Of(1))).AsTask().WithHangDetector();
        var wrongThread = Assert.Throws<InvalidOperationException>(scope.Dispose);
        Assert.Contains("must be disposed there", wrongThread.Message);
        await runtime[0].InvokeAsync(scope.Dispose).AsTask().WithHangDetector();
        scope.Dispose(); // closed: a no-op from anywhere
        default(CpuSyncScope).Dispose();

        // A CPU of another runtime may not interlock this one.
        await using (var other = TestUtil.Start(1))
        {
            var foreign = await other[0].InvokeAsync(() => Assert.Throws<InvalidOperationException>(() => runtime.RunOnAll(runtime.AllCpus, static _ => { }))).AsTask().WithHangDetector();
            Assert.Contains("another CpuRuntime", foreign.Message);
        }

        await runtime.DisposeAsync().AsTask().WithHangDetector();
        Assert.Throws<ObjectDisposedException>(() => runtime.Interlock(runtime.AllCpus));
        Assert.Throws<ObjectDisposedException>(() => runtime.RunOnAll(runtime.AllCpus, static _ => { }));
        Assert.Throws<ObjectDisposedException>(() => { _ = runtime.RunOnAllAsync(runtime.AllCpus, static _ => { }); });
    }

    /// <summary>Cancellation before the synchronization starts: the function runs nowhere.</summary>
    [Fact]
    public async Task RunOnAllAsync_CanceledBeforeStart_RunsNothing()
    {
        await using var runtime = TestUtil.Start(2);
        var runs = new int[2];
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => runtime.RunOnAllAsync(runtime.AllCpus, s_record, runs, cts.Token).AsTask());
        Assert.Equal(new[] { 0, 0 }, runs);
    }

    /// <summary>Steady state on a CPU master allocates nothing, on the master's thread and on the target's.</summary>
    [Fact]
    public async Task SteadyState_FromCpu_AllocatesNothing()
    {
        await using var runtime = TestUtil.Start(2, TestUtil.Quiet);
        var targetBytes = new long[1];
        Action<object?> measure = static o =>
        {
            if (Cpu.Current!.Id == 1) Volatile.Write(ref ((long[])o!)[0], GC.GetAllocatedBytesForCurrentThread());
        };
        (long master, long target) = await Progress.Await(runtime[0].InvokeAsync(() =>
        {
            CpuMask all = runtime.AllCpus;
            for (int i = 0; i < 2_000; i++) runtime.RunOnAll(all, measure, targetBytes); // warm up (JIT tiers)
            for (int i = 0; i < 2_000; i++) using (runtime.Interlock(all, measure, targetBytes)) { }
            long masterBefore = GC.GetAllocatedBytesForCurrentThread();
            long targetBefore = Volatile.Read(ref targetBytes[0]);
            for (int i = 0; i < 5_000; i++)
            {
                runtime.RunOnAll(all, measure, targetBytes);
                using (runtime.Interlock(all, measure, targetBytes)) { }
            }
            return (GC.GetAllocatedBytesForCurrentThread() - masterBefore, Volatile.Read(ref targetBytes[0]) - targetBefore);
        }).AsTask(), Progress.Of(runtime));
        Assert.Equal(0, master);
        Assert.Equal(0, target);
    }
}
