namespace PerCpu.Tests.SoftInterrupts;

/// <summary>Helpers for stepping a manual runtime (<see cref="CpuRuntime.StartManual"/>): every step is deterministic.</summary>
internal static class SoftTestUtil
{
    private static readonly Action<object?, long> s_run = static (a, _) => ((Action)a!)();

    public static CpuRuntime Manual(int cpus = 2, Action<CpuRuntimeOptions>? configure = null)
    {
        var options = new CpuRuntimeOptions { CpuCount = cpus };
        configure?.Invoke(options);
        return CpuRuntime.StartManual(options);
    }

    /// <summary>
    /// Runs <paramref name="action"/> on <paramref name="cpu"/> as an IPI, in one dispatch pass (which then also runs
    /// the soft interrupts and tasks that are ready). An exception inside is rethrown here.
    /// </summary>
    public static void Run(Cpu cpu, Action action)
    {
        Exception? error = null;
        cpu.Send(s_run, (Action)(() =>
        {
            try { action(); }
            catch (Exception e) { error = e; }
        }));
        cpu.RunOnce();
        if (error != null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
    }

    /// <summary>Steps every CPU until a whole round does nothing.</summary>
    public static void Drain(CpuRuntime runtime)
    {
        for (int round = 0; round < 10_000; round++)
        {
            bool any = false;
            foreach (Cpu cpu in runtime.Cpus) any |= cpu.RunOnce();
            if (!any) return;
        }
        throw new Xunit.Sdk.XunitException("The manual runtime never went idle.");
    }

    /// <summary>A thread-safe log of what ran, in order.</summary>
    public sealed class Log
    {
        private readonly List<string> _entries = [];

        public void Add(string entry)
        {
            lock (_entries) _entries.Add(entry);
        }

        public string[] Entries
        {
            get
            {
                lock (_entries) return [.. _entries];
            }
        }
    }
}
