namespace PerCpu.Tests.Sync;

/// <summary>Helpers for the cpusync tests.</summary>
internal static class SyncTestHelpers
{
    /// <summary>
    /// Runs <paramref name="body"/>(0 … <paramref name="iterations"/> - 1) as a chain of tasks on <paramref name="cpu"/>,
    /// each iteration a task of its own that posts the next one: the CPU's dispatch loop (IPIs, cpusync) runs in between.
    /// </summary>
    public static Task RunChain(Cpu cpu, int iterations, Action<int> body)
    {
        var chain = new Chain(iterations, body);
        cpu.Post(chain.Step);
        return chain.Done.Task;
    }

    private sealed class Chain
    {
        private readonly int _iterations;
        private readonly Action<int> _body;
        private int _next;
        public readonly TaskCompletionSource Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly Action Step;

        public Chain(int iterations, Action<int> body)
        {
            _iterations = iterations;
            _body = body;
            Step = RunStep;
        }

        private void RunStep()
        {
            try
            {
                if (_next < _iterations) _body(_next++);
                if (_next < _iterations) Cpu.Current!.Post(Step);
                else Done.TrySetResult();
            }
            catch (Exception e)
            {
                Done.TrySetException(e);
            }
        }
    }

    /// <summary>Spins (off-CPU) until <paramref name="condition"/> holds; the deadline is a hang detector only.</summary>
    public static void SpinUntil(Func<bool> condition, string what)
    {
        if (!SpinWait.SpinUntil(condition, TestUtil.Hang))
            throw new Xunit.Sdk.XunitException($"Hang detector fired after {TestUtil.Hang}: {what}");
    }
}
