using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.PerCpuRows;

/// <summary>
/// Soft interrupt rows (DESIGN §5). Local: a handler on CPU 0 schedules itself again from inside its run, so each
/// operation is one softint_schedule plus one dispatch (target: ≤ 50 ns, i.e. ≥ 20 M/s). Remote: a driver on CPU 0
/// calls ScheduleOn(CPU 1) in a loop; while a remote run is pending the call is coalesced, so the value is calls per
/// second and the note says how many runs they caused (target: cost per call ≤ 1.2× a Send).
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
}
