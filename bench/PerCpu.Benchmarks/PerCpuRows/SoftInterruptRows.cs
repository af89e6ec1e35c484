using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.PerCpuRows;

/// <summary>
/// Soft interrupt rows (DESIGN §5). Local: a handler on CPU 0 schedules itself again from inside its run, so each
/// operation is one softint_schedule plus one dispatch (target: ≤ 50 ns, i.e. ≥ 20 M/s). Stream: a driver on CPU 0
/// calls ScheduleOn(CPU 1) in a loop; while a remote run is pending the call is coalesced, so the value is calls per
/// second and the note says how many runs they caused (not judged: coalesced calls are not comparable with Sends).
/// Ping-pong: one handler bounced between CPU 0 and CPU 1 with ScheduleOn, never coalesced, so each hop is one
/// ScheduleOn IPI plus one dispatch (target: ≤ 1.2× the Send ping-pong with the same default options).
/// </summary>
internal static class SoftInterruptRows
{
    public static IEnumerable<BenchRow> Rows()
    {
        yield return new BenchRow
        {
            Key = "percpu.softint.schedule", Name = "PerCpu Schedule + dispatch, local", Kind = RowKind.Throughput, Group = RowGroup.PerCpu,
            CompareWith = "c.ring", QuickCount = 20_000,
            What = "a Clock handler on CPU 0 reschedules itself n times: one Schedule() + one dispatch per operation (≤ 50 ns = ≥ 20 M/s)",
            Run = LocalRun,
        };
        yield return new BenchRow
        {
            Key = "percpu.softint.scheduleon", Name = "PerCpu ScheduleOn CPU0 -> CPU1", Kind = RowKind.Throughput, Group = RowGroup.PerCpu,
            CompareWith = "c.ring", QuickCount = 20_000,
            What = "driver on CPU 0 loops ScheduleOn(CPU 1) n times (coalesced while a remote run is pending), then waits until CPU 1 has run it; value = calls/s",
            Run = RemoteRun,
        };
        yield return new BenchRow
        {
            Key = "percpu.softint.pingpong", Name = "PerCpu ScheduleOn ping-pong, default idle", Kind = RowKind.RoundTrip, Group = RowGroup.PerCpu,
            CompareWith = "c.pingpong", QuickCount = 500, MaxCount = 20_000_000,
            What = "one Net handler: its run on CPU 1 does ScheduleOn(CPU 0), its run on CPU 0 ScheduleOn(CPU 1)...; default options (compare percpu.pingpong.idle, the same with Send)",
            Run = PingPongRun,
        };
    }

    private sealed class LocalJob(long n) : CpuJob
    {
        public long Runs;
        public SoftInterrupt? Handle;

        public void Start()
        {
            StartClock();
            Handle!.Schedule();
        }

        /// <summary>The handler, on CPU 0.</summary>
        public void OnRun()
        {
            if (++Runs < n) Handle!.Schedule();
            else StopClock();
        }
    }

    private static RunSample LocalRun(long n)
    {
        using CpuRuntime runtime = Runtimes.Start();
        var job = new LocalJob(n);
        using SoftInterrupt si = runtime.Establish(SoftLevel.Clock, static s => ((LocalJob)s!).OnRun(), job);
        job.Handle = si;
        job.Run(runtime, () => runtime[0].Post(job.Start));
        if (job.Runs != n) throw new InvalidOperationException($"expected {n} handler runs, got {job.Runs}");
        return new RunSample(job.Seconds, n, job.AllocatedBytes, Note: $"{job.Runs} runs");
    }

    private sealed class RemoteJob(CpuRuntime runtime, long n) : CpuJob
    {
        public long Runs; // written on CPU 1 only
        public SoftInterrupt? Handle;

        /// <summary>Runs on CPU 0.</summary>
        public void Drive()
        {
            try
            {
                Cpu target = runtime[1];
                StartClock();
                for (long i = 0; i < n; i++) Handle!.ScheduleOn(target);
                // Everything scheduled has run once a message sent after it has: the request IPI precedes it in the ring.
                target.WaitFor(target.Send(static (_, _) => { }));
                StopClock();
            }
            catch (Exception e)
            {
                Fail(e);
            }
        }
    }

    private static RunSample RemoteRun(long n)
    {
        using CpuRuntime runtime = Runtimes.Start();
        var job = new RemoteJob(runtime, n);
        using SoftInterrupt si = runtime.Establish(SoftLevel.Net, static s => ((RemoteJob)s!).Runs++, job);
        job.Handle = si;
        job.Run(runtime, () => runtime[0].Post(job.Drive));
        if (job.Runs < 1) throw new InvalidOperationException("ScheduleOn never ran the handler");
        return new RunSample(job.Seconds, n, job.AllocatedBytes, Note: $"{job.Runs} handler runs for {n} calls (coalesced)");
    }

    // ---------------------------------------------------------------- ScheduleOn ping-pong between CPU 0 and CPU 1
    /// <summary>
    /// One handler, run alternately on CPU 1 and CPU 0: a round trip is a ScheduleOn(CPU 1) from CPU 0, the run there, its
    /// ScheduleOn(CPU 0) and the run back on CPU 0. Each side counts its own runs in a cell of its own cache lines, so the
    /// check adds no cross-CPU line transfer that the Send ping-pong does not pay (that row carries its check value in
    /// the message, which a soft interrupt has no room for). Each side schedules the other only from its own run, so a
    /// run lost stops the chain (a timeout) and a run duplicated, or out of turn, shows as a count other than n.
    /// </summary>
    private sealed class PingPongJob(CpuRuntime runtime, long n) : CpuJob
    {
        private readonly Cpu _cpu0 = runtime[0], _cpu1 = runtime[1];
        private readonly PaddedCell _runs0 = new(), _runs1 = new();   // written only by CPU 0, resp. CPU 1
        public SoftInterrupt? Handle;

        /// <summary>Handler runs on CPU 0, resp. CPU 1 (read once the handler is disestablished).</summary>
        public long Runs0 => Volatile.Read(ref _runs0.Value);

        /// <inheritdoc cref="Runs0"/>
        public long Runs1 => Volatile.Read(ref _runs1.Value);

        /// <summary>Posted onto CPU 0.</summary>
        public void Start()
        {
            try
            {
                StartClock();
                Handle!.ScheduleOn(_cpu1);
            }
            catch (Exception e)
            {
                Fail(e);
            }
        }

        /// <summary>The handler, on either CPU (an exception reaches the runtime's UnhandledException, which fails the job).</summary>
        public void OnRun()
        {
            if (Cpu.Current == _cpu1)
            {
                _runs1.Value++;
                Handle!.ScheduleOn(_cpu0);
                return;
            }
            long runs = ++_runs0.Value;
            if (runs < n) Handle!.ScheduleOn(_cpu1);
            else if (runs == n) StopClock();   // a stray run past n only counts: the clock has stopped
        }
    }

    private static RunSample PingPongRun(long n)
    {
        using CpuRuntime runtime = Runtimes.Start();
        var job = new PingPongJob(runtime, n);
        using SoftInterrupt si = runtime.Establish(SoftLevel.Net, static s => ((PingPongJob)s!).OnRun(), job);
        job.Handle = si;
        CpuStatistics before = runtime.GetStatistics();
        job.Run(runtime, () => runtime[0].Post(job.Start));
        CpuStatistics stats = runtime.GetStatistics() - before;
        si.Dispose();   // the handler can never run again: a late, extra run is in the counts now
        if (job.Runs0 != n || job.Runs1 != n)
            throw new InvalidOperationException($"PerCpu ScheduleOn ping-pong: expected {n} handler runs on each CPU, got {job.Runs1} on CPU 1 and {job.Runs0} on CPU 0");
        return new RunSample(job.Seconds, n, job.AllocatedBytes, Note: $"{(double)stats.Sent / n:0.00} IPIs/round trip, {(double)stats.WakesReceived / n:0.00} wakes/round trip");
    }
}
