using System.Diagnostics;

namespace PerCpu.Tests.Sync;

/// <summary>What an interlocked scope guarantees: held CPUs run IPIs only; others run normally.</summary>
public sealed class InterlockTests
{
    /// <summary>
    /// Two fields that must always be equal, written by a master without atomics, and reader tasks that run on every
    /// CPU back to back. Each reader counts its reads and the torn (A != B) states it saw.
    /// </summary>
    private sealed class Shared
    {
        public long A, B;
        public readonly long[] Reads;
        public long Torn;
        public volatile bool Stop;
        public Shared(int cpus) => Reads = new long[cpus];
    }

    /// <summary>Starts a reader task chain on <paramref name="cpu"/> that runs until <see cref="Shared.Stop"/>.</summary>
    private static Task StartReaders(Cpu cpu, Shared s)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Action? read = null;
        read = () =>
        {
            long a = Volatile.Read(ref s.A);
            long b = Volatile.Read(ref s.B);
            if (a != b) Interlocked.Increment(ref s.Torn);
            // Interlocked: a full fence, so a writer that sees this count also sees where our reads stand (see the torn test).
            Interlocked.Increment(ref s.Reads[Cpu.Current!.Id]);
            if (s.Stop) done.TrySetResult();
            else Cpu.Current.Post(read!);
        };
        cpu.Post(read);
        return done.Task;
    }

    private static long[] Snapshot(Shared s) => s.Reads.Select(r => Volatile.Read(ref r)).ToArray();

    private static long ReadsOf(Shared s, int cpu) => Interlocked.Read(ref s.Reads[cpu]);

    /// <summary>Waits until every CPU has done at least two more reads than in <paramref name="before"/> (so readers really run between scopes).</summary>
    private static void WaitForReads(Shared s, int cpus, long[] before)
    {
        for (int c = 0; c < cpus; c++)
        {
            int cpu = c;
            SyncTestHelpers.SpinUntil(() => ReadsOf(s, cpu) >= before[cpu] + 2, $"readers on CPU {cpu} make progress");
        }
    }

    /// <summary>
    /// The control experiment: without an interlock, a reader task that runs between the writes of A and B sees them
    /// differ. The writer waits until some CPU has finished two reads after it wrote A (so one read ran entirely in the
    /// torn window), which makes the torn state certain, not likely. The interlocked test below does the same writes
    /// and the same readers; there the readers cannot run inside the window at all.
    /// </summary>
    [Fact]
    public async Task WithoutInterlock_TheTornStateIsObservable()
    {
        await using var runtime = TestUtil.Start(3);
        var s = new Shared(3);
        Task[] readers = Enumerable.Range(0, 3).Select(c => StartReaders(runtime[c], s)).ToArray();
        for (long i = 1; i <= 3; i++)
        {
            // Full fences on both sides (Exchange here, Increment in the reader): a read counted after this point
            // started after the write, so it sees A == i while B is still i - 1.
            Interlocked.Exchange(ref s.A, i);
            long[] before = Snapshot(s);
            SyncTestHelpers.SpinUntil(() => Enumerable.Range(0, 3).Any(c => ReadsOf(s, c) >= before[c] + 2), "a reader runs in the torn window");
            Volatile.Write(ref s.B, i);
        }
        s.Stop = true;
        await Task.WhenAll(readers).WithHangDetector();
        Assert.True(Interlocked.Read(ref s.Torn) >= 3, $"torn reads seen: {s.Torn}");
    }

    /// <summary>
    /// Inside the scope no reader task runs on any CPU of the mask (their read counts are frozen), so the torn state is
    /// never seen; between scopes the readers run (their counts move), so the test is not vacuous. The master is
    /// either a thread that is not a CPU or CPU 0 (then the readers on CPU 1 and 2 are the held ones).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WhileInterlocked_NoTaskRunsInTheMask_AndTheTornStateIsNeverSeen(bool masterIsCpu)
    {
        const int cpus = 3;
        await using var runtime = TestUtil.Start(cpus);
        var s = new Shared(cpus);
        Task[] readers = Enumerable.Range(0, cpus).Select(c => StartReaders(runtime[c], s)).ToArray();
        int frozenViolations = 0;
        long roundsDone = 0;

        void Rounds()
        {
            for (long i = 1; i <= 200; i++)
            {
                long[] between = Snapshot(s);
                using (runtime.Interlock(runtime.AllCpus))
                {
                    long[] before = Snapshot(s);
                    Volatile.Write(ref s.A, i);
                    // Hold the torn state for a while: long enough for many reads if any reader could run.
                    long until = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 5000;
                    while (Stopwatch.GetTimestamp() < until) Thread.SpinWait(20);
                    Volatile.Write(ref s.B, i);
                    long[] after = Snapshot(s);
                    for (int c = 0; c < cpus; c++)
                        if (after[c] != before[c] && !(masterIsCpu && c == Cpu.Current!.Id)) frozenViolations++;
                }
                if (!masterIsCpu && i % 20 == 0) WaitForReads(s, cpus, between);
                Interlocked.Increment(ref roundsDone);
            }
        }

        if (masterIsCpu)
        {
            // The master's own CPU runs the rounds as one task, so its readers wait; the held ones are CPU 1 and 2.
            await Progress.Await(runtime[0].InvokeAsync(Rounds).AsTask(), () => Interlocked.Read(ref roundsDone));
            long[] now = Snapshot(s);
            WaitForReads(s, cpus, now);
        }
        else
        {
            await Progress.Await(Task.Factory.StartNew(Rounds, TaskCreationOptions.LongRunning), () => Interlocked.Read(ref roundsDone));
        }
        s.Stop = true;
        await Task.WhenAll(readers).WithHangDetector();
        Assert.Equal(0, frozenViolations);
        Assert.Equal(0, Interlocked.Read(ref s.Torn));
    }

    /// <summary>
    /// With CPU 0 and 1 held by a scope, CPU 2 (outside the mask) runs tasks and IPIs normally, the held CPUs still run
    /// IPIs (an InvokeAsync to them completes), but not tasks: a task posted to a held CPU runs only after the scope.
    /// </summary>
    [Fact]
    public async Task CpuOutsideTheMask_KeepsRunning_HeldCpusRunIpisButNotTasks()
    {
        await using var runtime = TestUtil.Start(3);
        var held = CpuMask.Of(0, 1);
        var taskOnHeld = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        CpuSyncScope scope = runtime.Interlock(held);
        try
        {
            runtime[1].Post(() => taskOnHeld.TrySetResult());

            // A long interlock: CPU 2 keeps doing real work, as tasks and as IPIs, many times over.
            for (int i = 0; i < 200; i++)
            {
                var ran = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
                runtime[2].Post(() => ran.TrySetResult(Cpu.Current!.Id));
                Assert.Equal(2, await ran.Task.WithHangDetector());
                Assert.Equal(2, await runtime[2].InvokeAsync(() => Cpu.Current!.Id).AsTask().WithHangDetector());
            }

            // IPIs still run on the held CPUs (that is what keeps concurrent masters from deadlocking) …
            Assert.Equal(1, await runtime[1].InvokeAsync(() => Cpu.Current!.Id).AsTask().WithHangDetector());
            Assert.Equal(0, await runtime[0].InvokeAsync(() => Cpu.Current!.Id).AsTask().WithHangDetector());
            // … and the IPI that queued the task has run (it was sent before that InvokeAsync), but the task has not.
            Assert.False(taskOnHeld.Task.IsCompleted, "a task ran on a held CPU");
        }
        finally
        {
            scope.Dispose(); // an outside master may close the scope on another thread (we may have resumed elsewhere)
        }
        await taskOnHeld.Task.WithHangDetector();
    }

    /// <summary>
    /// A task that is suspended in a wait (here WaitFor, which keeps draining IPIs) when its CPU is interlocked does not
    /// resume while the CPU is held, even once what it waits for has happened: the CPU stays in the cpusync loop (as
    /// the seed loops in lwkt_process_ipiq). The task checks, when it resumes, whether the scope is still open.
    /// </summary>
    [Fact]
    public async Task TaskSuspendedInAWait_DoesNotResumeWhileHeld()
    {
        await using var runtime = TestUtil.Start(3);
        var gate = new ManualResetEventSlim();
        bool waiting = false, scopeOpen = false, resumedWhileHeld = false;
        var taskDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        runtime[1].Post(() =>
        {
            // CPU 2 is kept busy in a message until the gate opens; this task waits for that message to finish.
            long seq = runtime[2].Send(static (g, _) => ((ManualResetEventSlim)g!).WaitOrFail("the test opens the gate"), gate);
            Volatile.Write(ref waiting, true);
            runtime[2].WaitFor(seq);
            if (Volatile.Read(ref scopeOpen)) resumedWhileHeld = true;
            taskDone.TrySetResult();
        });
        SyncTestHelpers.SpinUntil(() => Volatile.Read(ref waiting), "the task is waiting on CPU 2");

        using (runtime.Interlock(CpuMask.Of(1)))
        {
            Volatile.Write(ref scopeOpen, true);
            gate.Set();
            // CPU 2 finishes the message; CPU 1 keeps processing IPIs (a hundred round trips), but the task stays put.
            await runtime[2].InvokeAsync(static () => { }).AsTask().WithHangDetector();
            for (int i = 0; i < 100; i++) await runtime[1].InvokeAsync(static () => { }).AsTask().WithHangDetector();
            Assert.False(taskDone.Task.IsCompleted, "a task resumed on a held CPU");
            Volatile.Write(ref scopeOpen, false);
        }
        await taskDone.Task.WithHangDetector();
        Assert.False(resumedWhileHeld);
        gate.Dispose();
    }

    /// <summary>
    /// Deterministic, one pass at a time (no CPU threads): a master on another thread interlocks CPU 1; while held, a
    /// pass on CPU 1 runs IPIs (the post that queues a task) but not the task; once released, the task runs.
    /// </summary>
    [Fact]
    public async Task Manual_HeldCpuRunsIpisOnly_UntilReleased()
    {
        await using var runtime = CpuRuntime.StartManual(new CpuRuntimeOptions { CpuCount = 2 });
        Cpu cpu1 = runtime[1];
        using var opened = new ManualResetEventSlim();
        using var close = new ManualResetEventSlim();
        Task master = Task.Factory.StartNew(() =>
        {
            using (runtime.Interlock(CpuMask.Of(1)))
            {
                opened.Set();
                close.WaitOrFail("the test lets the master close its scope");
            }
        }, TaskCreationOptions.LongRunning);

        // Step CPU 1 until it has acknowledged remote1 and the master's Interlock has returned.
        SyncTestHelpers.SpinUntil(() => { cpu1.RunOnce(); return opened.IsSet || master.IsCompleted; }, "CPU 1 acknowledges the interlock");
        Assert.False(master.IsFaulted, master.Exception?.ToString());

        int ran = 0;
        long received;
        try
        {
            cpu1.Post(() => ran++);
            for (int i = 0; i < 100; i++) cpu1.RunOnce();
            received = cpu1.GetStatistics().Received;
            Assert.Equal(0, ran);
        }
        finally
        {
            close.Set();
        }
        Assert.Equal(2, received); // remote1 and the post's IPI ran: IPIs are processed while held
        SyncTestHelpers.SpinUntil(() => { cpu1.RunOnce(); return master.IsCompleted; }, "the master's deinterlock completes");
        await master;
        cpu1.RunOnce();
        Assert.Equal(1, ran);
    }

    /// <summary>A scope with a function: the function runs at deinterlock, once per CPU of the mask, the master's CPU included.</summary>
    [Fact]
    public async Task InterlockWithFunction_RunsItOncePerCpu_WhenTheScopeCloses()
    {
        await using var runtime = TestUtil.Start(3);
        var runs = new int[3];
        int[] inside = [], after = [];
        await runtime[1].InvokeAsync(() =>
        {
            CpuSyncScope scope = runtime.Interlock(CpuMask.Of(0, 1), static o => Interlocked.Increment(ref ((int[])o!)[Cpu.Current!.Id]), runs);
            try
            {
                inside = runs.Select(r => Volatile.Read(ref r)).ToArray();
            }
            finally
            {
                scope.Dispose();
            }
            after = runs.Select(r => Volatile.Read(ref r)).ToArray();
            scope.Dispose(); // a second dispose does nothing
        }).AsTask().WithHangDetector();
        Assert.Equal(new[] { 0, 0, 0 }, inside);
        Assert.Equal(new[] { 1, 1, 0 }, after);
        Assert.Equal(new[] { 1, 1, 0 }, runs);
    }

    /// <summary>cscount: counted on the master (CPU or the runtime's outside counters), only for syncs that interlocked other CPUs (as the seed).</summary>
    [Fact]
    public async Task Statistics_CountSyncsOnTheMaster()
    {
        await using var runtime = TestUtil.Start(2);
        await runtime[0].InvokeAsync(() =>
        {
            for (int i = 0; i < 5; i++) runtime.RunOnAll(runtime.AllCpus, static _ => { });
            runtime.RunOnAll(CpuMask.Of(0), static _ => { }); // only itself: nothing to interlock
            using (runtime.Interlock(CpuMask.Of(1))) { }
        }).AsTask().WithHangDetector();
        for (int i = 0; i < 3; i++) runtime.RunOnAll(runtime.AllCpus, static _ => { });
        Assert.Equal(6, runtime[0].GetStatistics().CpuSyncs);
        Assert.Equal(0, runtime[1].GetStatistics().CpuSyncs);
        Assert.Equal(9, runtime.GetStatistics().CpuSyncs);
    }

    /// <summary>Trace points: the master's CPU records sync_start and sync_end, with the mask as the argument.</summary>
    [Fact]
    public async Task Trace_RecordsSyncStartAndEndOnTheMaster()
    {
        await using var runtime = TestUtil.Start(3);
        runtime.StartTrace();
        await runtime[1].InvokeAsync(() => runtime.RunOnAll(CpuMask.Of(0, 1), static _ => { })).AsTask().WithHangDetector();
        PerCpu.Diagnostics.CpuTrace trace = runtime.StopTrace();
        var sync = trace.Events.Where(e => e.Name is "sync_start" or "sync_end").ToArray();
        Assert.Equal(new[] { "sync_start", "sync_end" }, sync.Select(e => e.Name).ToArray());
        Assert.All(sync, e =>
        {
            Assert.Equal(1, e.Cpu);
            Assert.Equal(0b11, e.Argument);
        });
    }
}
