using System.Diagnostics;
using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.PerCpuRows;

/// <summary>
/// Work started on a CPU that reports back to the benchmark thread: the timestamps and allocation of its timed
/// section, and any exception (also one the runtime caught in a function, which would otherwise leave the chain of
/// messages stopped and the benchmark waiting).
/// </summary>
internal abstract class CpuJob
{
    private readonly ManualResetEventSlim _done = new(false);
    private Exception? _error;
    private long _t0, _t1, _bytes0, _bytes;

    public double Seconds => Stopwatch.GetElapsedTime(_t0, _t1).TotalSeconds;

    public long AllocatedBytes => _bytes;

    /// <summary>Call on the CPU right before the timed section (reads the allocation counter first, so its cost is not timed).</summary>
    protected void StartClock()
    {
        _bytes0 = GC.GetTotalAllocatedBytes(precise: true);
        _t0 = Stopwatch.GetTimestamp();
    }

    /// <summary>Call on the CPU right after the timed section; releases the benchmark thread.</summary>
    protected void StopClock()
    {
        _t1 = Stopwatch.GetTimestamp();
        _bytes = GC.GetTotalAllocatedBytes(precise: true) - _bytes0;
        _done.Set();
    }

    protected void Fail(Exception e)
    {
        _error ??= e;
        _done.Set();
    }

    /// <summary>
    /// On the benchmark thread: listens for errors the runtime catches, starts the job with <paramref name="start"/>
    /// (typically a Post onto CPU 0) and waits until it finishes or fails.
    /// </summary>
    public void Run(CpuRuntime runtime, Action start)
    {
        void OnError(object? sender, CpuExceptionEventArgs e) => Fail(e.Exception);
        runtime.UnhandledException += OnError;   // before the start: an early failure must not be missed
        try
        {
            start();
            if (!_done.Wait(ThreadPair.Timeout))
                throw new TimeoutException($"PerCpu run did not finish within {ThreadPair.Timeout.TotalSeconds:0} s (lost message or deadlock)");
        }
        finally
        {
            runtime.UnhandledException -= OnError;
        }
        if (_error is not null) throw new InvalidOperationException($"PerCpu run failed on a CPU: {_error.Message}", _error);
    }
}
