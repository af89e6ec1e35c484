using System.Diagnostics;

namespace PerCpu.Benchmarks.Harness;

/// <summary>
/// Measures one row. Full mode: calibrate the count so that a run takes about <c>RunSeconds</c> (the calibration
/// runs are the warm-up), then up to 12 runs to keep 5 whose placement probes agree with the reference, within a time
/// budget per row (on a loaded machine a run can take 100 times its calibrated length). Quick mode: one run with the
/// row's tiny count, no probes. A row that throws fails alone; the suite goes on.
/// </summary>
public sealed class RowRunner(PlacementGate? gate, bool quick, double runSeconds)
{
    public const int MaxAttempts = 12;
    private const int MinKept = 3;
    private const double CalibrationFloorSeconds = 0.05;

    /// <summary>No new run starts after this long on one row (calibration included).</summary>
    private double BudgetSeconds => Math.Max(30, runSeconds * 60);

    public RowResult Measure(BenchRow row)
    {
        try
        {
            // Start every row from a clean heap: a previous row's garbage must not be collected on this one's time.
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            return quick ? MeasureQuick(row) : MeasureFull(row);
        }
        catch (Exception e)
        {
            return new RowResult { Row = row, Error = Describe(e) };
        }
    }

    /// <summary>The root cause: the harness wraps exceptions from benchmark threads and CPUs, keeping the original inside.</summary>
    private static string Describe(Exception e)
    {
        Exception root = e.GetBaseException();
        return $"{root.GetType().Name}: {root.Message}";
    }

    private RowResult MeasureQuick(BenchRow row)
    {
        long n = row.QuickCount;
        MachineLoad load0 = MachineLoad.Snapshot();
        ProcessUsage.Reading use0 = ProcessUsage.SelfAndChildren();
        RunSample s = row.Run(n);
        ProcessUsage.Reading use = ProcessUsage.SelfAndChildren() - use0;
        var (others, steal) = MachineLoad.Between(load0, MachineLoad.Snapshot());
        double v = s.Value(row.Kind);
        return new RowResult
        {
            Row = row, Value = v, Min = v, Max = v, AllRuns = [v], RunsKept = 1, RunsTried = 1, Count = n,
            BytesPerOp = (double)s.AllocatedBytes / s.Operations, SleepsPerOp = (double)use.Sleeps / s.Operations,
            OthersPercent = others, StealPercent = steal, Note = s.Note,
        };
    }

    private RowResult MeasureFull(BenchRow row)
    {
        bool gated = row.Gated && gate is not null;
        long started = Stopwatch.GetTimestamp();
        long n = row.FixedCount ?? Calibrate(row);
        if (row.FixedCount is not null) row.Run(Math.Min(n, row.QuickCount));   // warm-up (JIT) at a small size

        var kept = new List<double>();
        var all = new List<double>();
        var probes = new List<double>();
        long bytes = 0, ops = 0;
        string? note = null;
        int tried = 0;
        MachineLoad load0 = MachineLoad.Snapshot();
        ProcessUsage.Reading use0 = ProcessUsage.SelfAndChildren();
        bool outOfTime = false;
        while (kept.Count < row.Runs && tried < (gated ? MaxAttempts : row.Runs))
        {
            if (tried > 0 && Stopwatch.GetElapsedTime(started).TotalSeconds > BudgetSeconds)
            {
                outOfTime = true;
                break;
            }
            tried++;
            double before = gated ? gate!.WaitForPlacement() : double.NaN;
            RunSample s = row.Run(n);
            double after = gated ? gate!.Probe() : double.NaN;
            double v = s.Value(row.Kind);
            all.Add(v);
            bytes += s.AllocatedBytes;
            ops += s.Operations;
            note = s.Note ?? note;
            if (!gated || (gate!.Near(before) && gate.Near(after)))
            {
                kept.Add(v);
                if (gated) { probes.Add(before); probes.Add(after); }
            }
        }
        ProcessUsage.Reading use = ProcessUsage.SelfAndChildren() - use0;
        var (others, steal) = MachineLoad.Between(load0, MachineLoad.Snapshot());

        bool placementOff = gated && kept.Count < MinKept;
        List<double> reported = placementOff ? all : kept;   // never settled: show every run, flagged, not judged
        return new RowResult
        {
            Row = row, Value = Stats.Median(reported), Min = reported.Min(), Max = reported.Max(), AllRuns = all,
            RunsKept = kept.Count, RunsTried = tried, PlacementOff = placementOff, ProbeNs = probes.Count > 0 ? Stats.Median(probes) : 0,
            BytesPerOp = (double)bytes / ops, SleepsPerOp = (double)use.Sleeps / ops, OthersPercent = others, StealPercent = steal,
            Count = n, Note = note,
            StoppedEarly = outOfTime ? $"stopped after the {BudgetSeconds:0} s budget of the row" : null,
        };
    }

    /// <summary>
    /// Grows the count fourfold until a run takes 50 ms, then scales it to the target, runs once more at that size
    /// (the second warm-up: by now the code is tiered up) and rescales. Counts stay within the row's bounds. Scaled by
    /// wall time, not the timed section: a row may spend most of a run untimed (the parked rows' quiet gaps).
    /// </summary>
    private long Calibrate(BenchRow row)
    {
        long n = row.QuickCount;
        double s;
        while ((s = WallSeconds(row, n)) < CalibrationFloorSeconds && n < row.MaxCount)
            n = Math.Min(n * 4, row.MaxCount);
        n = Scale(row, n, s);
        s = WallSeconds(row, n);
        return Scale(row, n, s);
    }

    private static double WallSeconds(BenchRow row, long n)
    {
        long t0 = Stopwatch.GetTimestamp();
        row.Run(n);
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    private long Scale(BenchRow row, long n, double seconds) =>
        Math.Clamp((long)(n * (runSeconds / Math.Max(seconds, 1e-6))), row.QuickCount, row.MaxCount);
}
