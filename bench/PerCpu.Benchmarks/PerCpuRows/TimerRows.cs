using System.Diagnostics;
using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.PerCpuRows;

/// <summary>
/// Timer rows (issue 12). Arm + fire: on CPU 0, batches of up to 4096 <see cref="CpuTimer"/>s are started due at once
/// and fired by softclock; each operation is one <c>Start</c> (callout_reset into the wheel) plus one firing (the
/// softclock run's share, the callback). Idle at 256 CPUs: what tickless idle buys, process CPU time while a 256-CPU
/// runtime (unpinned) does nothing, as % of one core (target &lt; 1 %).
/// </summary>
internal static class TimerRows
{
    public static IEnumerable<BenchRow> Rows()
    {
        yield return new BenchRow
        {
            Key = "percpu.timer.armfire", Name = "PerCpu CpuTimer arm + fire", Kind = RowKind.Throughput, Group = RowGroup.PerCpu,
            QuickCount = 20_000,
            What = "CPU 0 starts batches of 4096 timers due now; softclock fires them: one Start + one firing per operation (value = timers/s)",
            Run = ArmFire,
        };
        yield return new BenchRow
        {
            Key = "percpu.idle.256", Name = "PerCpu idle runtime (256 CPUs, tickless)", Kind = RowKind.Percent, Group = RowGroup.PerCpu,
            QuickCount = 300, FixedCount = 3_000, Runs = 3, Gated = false,
            What = "process CPU time while a 256-CPU runtime idles (no timers, no traffic: every CPU parked with no deadline), % of one core; count = ms",
            Run = Idle256,
        };
    }

    private sealed class ArmFireJob(long n) : CpuJob
    {
        private const int Batch = 4096;
        private CpuTimer[] _timers = [];
        private long _armed, _fired, _batchFired;
        private int _batchSize;

        public long Fired => _fired;

        public void Start()
        {
            var timers = new CpuTimer[(int)Math.Min(Batch, n)];
            for (int i = 0; i < timers.Length; i++) timers[i] = new CpuTimer(Cpu.Current!, static s => ((ArmFireJob)s!).OnFire(), this);
            _timers = timers;
            // The first arm on a fresh runtime creates the CPU's wheel and establishes softclock: not part of the cost.
            timers[0].Start(TimeSpan.FromHours(1));
            timers[0].Stop();
            StartClock();
            ArmBatch();
        }

        private void ArmBatch()
        {
            _batchSize = (int)Math.Min(_timers.Length, n - _armed);
            _batchFired = 0;
            for (int i = 0; i < _batchSize; i++) _timers[i].Start(TimeSpan.Zero);
            _armed += _batchSize;
        }

        private void OnFire()
        {
            _fired++;
            if (++_batchFired < _batchSize) return;
            if (_armed < n) ArmBatch(); // re-arming the same timers: nothing allocated after the first batch
            else StopClock();
        }
    }

    private static RunSample ArmFire(long n)
    {
        using CpuRuntime runtime = Runtimes.Start();
        var job = new ArmFireJob(n);
        job.Run(runtime, () => runtime[0].Post(job.Start));
        if (job.Fired != n) throw new InvalidOperationException($"expected {n} firings, got {job.Fired}");
        return new RunSample(job.Seconds, n, job.AllocatedBytes, Note: "timers due at once; the wheel's 1 ms tick is not part of the cost");
    }

    private static RunSample Idle256(long milliseconds)
    {
        using var runtime = CpuRuntime.Start(new CpuRuntimeOptions { CpuCount = 256, PinThreads = false });
        // Let every CPU start and park, and the JIT settle.
        Thread.Sleep((int)Math.Min(1000, milliseconds / 3));
        long t0 = Stopwatch.GetTimestamp();
        double percent = IdleRow.CpuPercent((int)milliseconds);
        double wall = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        long wakes = 0;
        foreach (Cpu cpu in runtime.Cpus) wakes += cpu.GetStatistics().WakesReceived;
        return new RunSample(wall, 1, 0, percent, $"wakes received {wakes}");
    }
}
