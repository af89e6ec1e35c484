using System.Diagnostics;
using PerCpu.Benchmarks.Harness;
using PerCpu.Benchmarks.Peers;

namespace PerCpu.Benchmarks.PerCpuRows;

/// <summary>
/// PerCpu round trips. Ping-pong: a function on CPU 1 sends a function back to CPU 0, which sends the next request,
/// and so on N times; CPU 0 times the chain. Three idle settings: poll mode (never park), the defaults under
/// continuous traffic (the idle spin keeps both awake). Parked rows: one round trip at a time after a quiet gap, so
/// that the CPUs have parked (under continuous traffic even IdleSpin = 0 never parks: the library's idle loop still
/// polls a few dozen times, and the reply comes back within that). InvokeAsync: an async loop on a non-CPU thread
/// awaits calls to CPU 1.
/// </summary>
internal static class RoundTripRows
{
    public static IEnumerable<BenchRow> Rows()
    {
        yield return new BenchRow
        {
            Key = "percpu.pingpong.poll", Name = "PerCpu ping-pong, PollMode", Kind = RowKind.RoundTrip, Group = RowGroup.PerCpu,
            CompareWith = "c.pingpong", QuickCount = 500, MaxCount = 20_000_000,
            What = "CPU 0 sends to CPU 1 a function that sends back to CPU 0 a function that sends again...; PollMode = true (never park)",
            Run = n => PingPong(n, o => o.PollMode = true, "PerCpu ping-pong (poll)"),
        };
        yield return new BenchRow
        {
            Key = "percpu.pingpong.idle", Name = "PerCpu ping-pong, default idle settings", Kind = RowKind.RoundTrip, Group = RowGroup.PerCpu,
            CompareWith = "c.pingpong", QuickCount = 500, MaxCount = 20_000_000,
            What = "the same ping-pong with default options (IdleSpin 50 µs, then park): continuous traffic",
            Run = n => PingPong(n, null, "PerCpu ping-pong (default)"),
        };
        yield return new BenchRow
        {
            Key = "percpu.parked", Name = "PerCpu round trip, both CPUs parked", Kind = RowKind.RoundTrip, Group = RowGroup.PerCpu,
            CompareWith = "c.futex", QuickCount = 50, MaxCount = 100_000,
            What = "IdleSpin = 0; before each round trip 1 ms of quiet so both CPUs park; CPU 0 sends to parked CPU 1, whose reply finds CPU 0 parked: two wake-ups, as in the C futex row",
            Run = n => Parked(n, o => o.IdleSpin = TimeSpan.Zero, "PerCpu round trip (both parked)"),
        };
        yield return new BenchRow
        {
            Key = "percpu.parked.target", Name = "PerCpu round trip to a parked CPU, defaults", Kind = RowKind.RoundTrip, Group = RowGroup.PerCpu,
            CompareWith = "c.futex", QuickCount = 50, MaxCount = 100_000,
            What = "default options; 1 ms of quiet so CPU 1 parks; CPU 0 sends, then idle-spins (50 µs) until the reply: one wake-up per round trip",
            Run = n => Parked(n, null, "PerCpu round trip (parked target)"),
        };
        yield return new BenchRow
        {
            Key = "percpu.invoke", Name = "PerCpu InvokeAsync from a non-CPU thread", Kind = RowKind.RoundTrip, Group = RowGroup.PerCpu,
            CompareWith = "c.pingpong", QuickCount = 500, MaxCount = 10_000_000,
            What = $"async loop started on a dedicated thread: await runtime[1].InvokeAsync(cached Action); default options (compare {DedicatedThreadRows.ChannelValueTaskSource})",
            Run = InvokeRun,
        };
    }

    // ---------------------------------------------------------------- ping-pong between CPU 0 and CPU 1
    private sealed class PingPongJob(CpuRuntime runtime, SeqCounter counter, long n) : CpuJob
    {
        /// <summary>Runs on CPU 0: the reply arrived; check it, then send the next request or stop the clock.</summary>
        private static readonly Action<object?, long> Reply = static (o, v) => ((PingPongJob)o!).OnReply(v);

        /// <summary>Runs on CPU 1: send the reply.</summary>
        private static readonly Action<object?, long> Request = static (o, v) => ((PingPongJob)o!)._cpu0.Send(Reply, o, v);

        private readonly Cpu _cpu0 = runtime[0], _cpu1 = runtime[1];

        /// <summary>Posted onto CPU 0.</summary>
        public void Start()
        {
            try
            {
                StartClock();
                _cpu1.Send(Request, this, 0);
            }
            catch (Exception e)
            {
                Fail(e);
            }
        }

        private void OnReply(long v)
        {
            counter.Take(v);
            if (v + 1 == n) StopClock();
            else _cpu1.Send(Request, this, v + 1);
        }
    }

    private static RunSample PingPong(long n, Action<CpuRuntimeOptions>? configure, string what)
    {
        using CpuRuntime runtime = Runtimes.Start(configure);
        var counter = new SeqCounter();
        var job = new PingPongJob(runtime, counter, n);
        CpuStatistics before = runtime.GetStatistics();
        job.Run(runtime, () => runtime[0].Post(job.Start));
        CpuStatistics s = runtime.GetStatistics() - before;
        counter.Verify(n, what);
        return new RunSample(job.Seconds, n, job.AllocatedBytes, Note: $"{(double)s.WakesReceived / n:0.00} wakes/round trip");
    }

    // ---------------------------------------------------------------- one round trip at a time, CPUs parked
    /// <summary>
    /// Each round trip is started by the benchmark thread after a 1 ms sleep (the CPUs have parked by then), with a
    /// Post to CPU 0 that wakes it; CPU 0 stamps the time, sends to CPU 1, and stamps again when the reply runs. Only
    /// that span is timed: the starter's wake and the benchmark thread's wait are not.
    /// </summary>
    private sealed class ParkedJob(CpuRuntime runtime, SeqCounter counter)
    {
        private static readonly Action<object?, long> Reply = static (o, v) => ((ParkedJob)o!).OnReply(v);
        private static readonly Action<object?, long> Request = static (o, v) => ((ParkedJob)o!)._cpu0.Send(Reply, o, v);

        private readonly Cpu _cpu0 = runtime[0], _cpu1 = runtime[1];
        private readonly ManualResetEventSlim _done = new(false);
        private long _index, _t0, _elapsedTicks, _bytes0;

        public TimeSpan Elapsed => Stopwatch.GetElapsedTime(0, _elapsedTicks);

        /// <summary>Bytes allocated (all threads) inside the timed spans only.</summary>
        public long AllocatedBytes { get; private set; }

        /// <summary>Posted onto CPU 0 (a cached delegate: the loop allocates nothing per round trip).</summary>
        public void Start()
        {
            _bytes0 = GC.GetTotalAllocatedBytes(precise: true);
            _t0 = Stopwatch.GetTimestamp();
            _cpu1.Send(Request, this, _index);
        }

        private void OnReply(long v)
        {
            _elapsedTicks += Stopwatch.GetTimestamp() - _t0;
            AllocatedBytes += GC.GetTotalAllocatedBytes(precise: true) - _bytes0;
            counter.Take(v);
            _index = v + 1;
            _done.Set();
        }

        /// <summary>A CPU reported an error: the reply may never come, stop waiting for it.</summary>
        public void Abort() => _done.Set();

        public void RunOne(Action start)
        {
            _done.Reset();
            _cpu0.Post(start);
            if (!_done.Wait(ThreadPair.Timeout)) throw new TimeoutException("PerCpu parked round trip did not complete (lost message?)");
        }
    }

    private static RunSample Parked(long n, Action<CpuRuntimeOptions>? configure, string what)
    {
        using CpuRuntime runtime = Runtimes.Start(configure);
        var counter = new SeqCounter();
        var job = new ParkedJob(runtime, counter);
        Action start = job.Start;
        Exception? error = null;
        void OnError(object? sender, CpuExceptionEventArgs e)
        {
            error ??= e.Exception;
            job.Abort();
        }
        runtime.UnhandledException += OnError;
        CpuStatistics before0 = runtime[0].GetStatistics(), before1 = runtime[1].GetStatistics();
        for (long i = 0; i < n && error is null; i++)
        {
            Thread.Sleep(1);   // quiet: both CPUs finish their idle spin and park
            job.RunOne(start);
        }
        runtime.UnhandledException -= OnError;
        if (error is not null) throw new InvalidOperationException($"{what} failed on a CPU: {error.Message}", error);
        CpuStatistics s0 = runtime[0].GetStatistics() - before0, s1 = runtime[1].GetStatistics() - before1;
        counter.Verify(n, what);
        // CPU 0 is woken once per round trip by the starter's Post (not timed) and, if it parked, once by the reply.
        string note = $"CPU 1 woken for {100.0 * s1.WakesReceived / n:0}% of requests, CPU 0 for {100.0 * Math.Max(0, s0.WakesReceived - n) / n:0}% of replies";
        return new RunSample(job.Elapsed.TotalSeconds, n, job.AllocatedBytes, Note: note);
    }

    // ---------------------------------------------------------------- InvokeAsync from outside
    private sealed class Calls
    {
        public long Count;

        /// <summary>Runs on CPU 1.</summary>
        public void Call() => Count++;
    }

    private static RunSample InvokeRun(long n)
    {
        using CpuRuntime runtime = Runtimes.Start();
        var calls = new Calls();
        Action call = calls.Call;   // cached: the loop allocates nothing of its own
        double seconds = 0;
        long bytes = ThreadPair.RunOne(() => seconds = InvokeLoop(runtime[1], call, n).GetAwaiter().GetResult());
        if (calls.Count != n) throw new InvalidOperationException($"PerCpu InvokeAsync: {calls.Count} calls ran, expected {n}");
        return new RunSample(seconds, n, bytes);
    }

    private static async Task<double> InvokeLoop(Cpu cpu, Action call, long n)
    {
        long t0 = Stopwatch.GetTimestamp();
        for (long i = 0; i < n; i++)
            await cpu.InvokeAsync(call).ConfigureAwait(false);
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }
}
