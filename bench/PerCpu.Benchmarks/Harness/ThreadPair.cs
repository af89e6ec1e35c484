namespace PerCpu.Benchmarks.Harness;

/// <summary>
/// Two dedicated threads for one run: each pins itself (when a CPU is given), reports ready and waits for a common
/// start, so thread creation and pinning stay out of the timed section. Returns the bytes all threads allocated
/// between the start and the join (the bodies take their own timestamps).
/// </summary>
internal static class ThreadPair
{
    /// <summary>How long a run may take before it counts as hung (a lost message leaves a consumer spinning).</summary>
    public static TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>One dedicated thread (a caller whose work goes elsewhere, e.g. to the thread pool).</summary>
    public static long RunOne(Action body, int cpu = -1) => Run(body, static () => { }, cpu, -1);

    public static long Run(Action first, Action second, int firstCpu = -1, int secondCpu = -1)
    {
        using var ready = new CountdownEvent(2);
        using var go = new ManualResetEventSlim(false);
        Exception? failure = null;

        Thread Start(Action body, int cpu, string name)
        {
            var t = new Thread(() =>
            {
                try
                {
                    if (cpu >= 0) Affinity.PinCurrentThread(cpu);
                }
                catch (Exception e)
                {
                    failure ??= e;
                }
                ready.Signal();
                go.Wait();
                if (failure is not null) return;
                try { body(); }
                catch (Exception e) { failure ??= e; }
            }) { IsBackground = true, Name = name };
            t.Start();
            return t;
        }

        Thread t2 = Start(second, secondCpu, "bench-second");
        Thread t1 = Start(first, firstCpu, "bench-first");
        ready.Wait();
        long a0 = GC.GetTotalAllocatedBytes(precise: true);
        go.Set();
        // A hung row must fail, not hang the suite: the threads are background threads, so they die with the process.
        if (!t1.Join(Timeout) || !t2.Join(Timeout))
            throw new TimeoutException($"run did not finish within {Timeout.TotalSeconds:0} s (lost message or deadlock)");
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - a0;
        if (failure is not null) throw new InvalidOperationException($"benchmark thread failed: {failure.Message}", failure);
        return allocated;
    }
}
