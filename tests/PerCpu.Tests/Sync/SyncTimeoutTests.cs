using System.Collections.Concurrent;

namespace PerCpu.Tests.Sync;

/// <summary>
/// A stuck CPU makes a synchronization time out (the kernel would panic; we throw). The master gives up cleanly: CPUs
/// already held are let go, the stuck CPU's late messages do nothing, the claims are freed, and errors are not lost.
/// The runtimes use a short <see cref="CpuRuntimeOptions.WaitTimeout"/>; the CPUs are stuck on gates the test opens
/// only after the timeout, so the outcome does not depend on timing.
/// </summary>
public sealed class SyncTimeoutTests
{
    private sealed class Boom(int cpu) : Exception($"boom on CPU {cpu}")
    {
        public int Cpu { get; } = cpu;
    }

    /// <summary>Long enough that CPUs which are not stuck always answer in time, even on a loaded two-core machine.</summary>
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(4);

    private static CpuRuntime Start(int cpus = 2) => TestUtil.Start(cpus, o => o.WaitTimeout = s_timeout);

    private static async Task AssertUsable(CpuRuntime runtime)
    {
        foreach (Cpu cpu in runtime.Cpus)
        {
            var ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            cpu.Post(() => ran.TrySetResult());
            await ran.Task.WithHangDetector();
        }
        var runs = new int[runtime.CpuCount];
        runtime.RunOnAll(runtime.AllCpus, static o => Interlocked.Increment(ref ((int[])o!)[Cpu.Current!.Id]), runs);
        Assert.All(runs, r => Assert.Equal(1, r));
    }

    /// <summary>CPU 1 never acknowledges: Interlock times out naming it, CPU 0 (already held) is let go, and CPU 1's late remote1 does nothing.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task InterlockTimesOut_OnAStuckCpu_AndLetsTheOthersGo(bool masterIsCpu)
    {
        // The gate outlives the runtime, and opens whatever happens: disposal waits for CPU 1's message.
        using var gate = new ManualResetEventSlim();
        await using var runtime = Start(3);
        try
        {
            // CPU 1 must be inside the blocking message before the interlock starts: a remote1 from CPU 2's ring could
            // otherwise run first (a drain serves the rings before the inbox), and CPU 1 would acknowledge in time.
            using var entered = new ManualResetEventSlim();
            runtime[1].Send(static (o, _) =>
            {
                var (e, g) = ((ManualResetEventSlim, ManualResetEventSlim))o!;
                e.Set();
                g.WaitOrFail("the test opens the gate");
            }, (entered, gate));
            entered.WaitOrFail("CPU 1 runs the blocking message");

            TimeoutException timeout;
            if (masterIsCpu)
                timeout = await runtime[2].InvokeAsync(() => Assert.Throws<TimeoutException>(() => runtime.Interlock(CpuMask.Of(0, 1)))).AsTask().WithHangDetector();
            else
                timeout = Assert.Throws<TimeoutException>(() => runtime.Interlock(CpuMask.Of(0, 1)));
            Assert.Contains("CPU 1", timeout.Message);
            Assert.Contains("cpusync acknowledgement", timeout.Message);

            // CPU 0 acknowledged and was held: it has been let go (a task runs there) while CPU 1 is still stuck.
            var ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            runtime[0].Post(() => ran.TrySetResult());
            await ran.Task.WithHangDetector();
        }
        finally
        {
            gate.Set();
        }
        await AssertUsable(runtime);
        Assert.Equal(0, runtime.GetStatistics().Errors);
    }

    /// <summary>
    /// CPU 1 runs the function for longer than WaitTimeout: RunOnAll times out, CPU 0's error is reported rather than
    /// lost, and when CPU 1 finally returns (throwing too) it resumes, frees its claim and reports its error.
    /// </summary>
    [Fact]
    public async Task DeinterlockTimesOut_OnALongFunction_AndLosesNothing()
    {
        using var gate = new ManualResetEventSlim();
        await using var runtime = Start();
        var unhandled = new ConcurrentQueue<Exception>();
        runtime.UnhandledException += (_, e) => unhandled.Enqueue(e.Exception);
        try
        {
            var timeout = Assert.Throws<TimeoutException>(() => runtime.RunOnAll(runtime.AllCpus, g =>
            {
                int id = Cpu.Current!.Id;
                if (id == 1) ((ManualResetEventSlim)g!).WaitOrFail("the test opens the gate");
                throw new Boom(id);
            }, gate));
            Assert.Contains("cpusync function", timeout.Message);
            // CPU 0 had finished (with an error) before the master gave up: that error was reported, not dropped.
            Assert.Equal(new[] { 0 }, unhandled.Select(e => Assert.IsType<Boom>(e).Cpu).ToArray());
        }
        finally
        {
            gate.Set();
        }
        // CPU 1 returns from the function, resumes and frees its own claim: a new synchronization over both completes
        // (and CPU 1 reported its error before it could acknowledge that one).
        await AssertUsable(runtime);
        Assert.Equal(new[] { 0, 1 }, unhandled.Select(e => Assert.IsType<Boom>(e).Cpu).Order().ToArray());
    }

    /// <summary>A scope left open on a CPU blocks other masters only up to WaitTimeout, with a message that says why.</summary>
    [Fact]
    public async Task ClaimTimesOut_WhileAnotherScopeIsOpen()
    {
        await using var runtime = Start();
        using (runtime.Interlock(CpuMask.Of(1)))
        {
            var fromCpu = await runtime[0].InvokeAsync(() => Assert.Throws<TimeoutException>(() => runtime.RunOnAll(runtime.AllCpus, static _ => { }))).AsTask().WithHangDetector();
            Assert.Contains("cpusync claim", fromCpu.Message);
            // CPU 0 claimed itself before it waited for CPU 1: that claim was given back (another master can take it).
            // (Flow suppressed: code started inside a scope counts as nested, and would be refused.)
            Task<CpuSyncScope> other;
            using (ExecutionContext.SuppressFlow()) other = Task.Run(() => runtime.Interlock(CpuMask.Of(0)));
            (await other.WithHangDetector()).Dispose();
        }
        await AssertUsable(runtime);
    }
}
