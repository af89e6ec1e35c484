using System.Runtime.CompilerServices;

namespace PerCpu.Tests;

/// <summary>Shared helpers. A timeout here is a hang detector: if it fires, there is a real bug.</summary>
internal static class TestUtil
{
    public static readonly TimeSpan Hang = TimeSpan.FromMinutes(1);

    public static CpuRuntime Start(int cpus = 2, Action<CpuRuntimeOptions>? configure = null)
    {
        var options = new CpuRuntimeOptions { CpuCount = cpus };
        configure?.Invoke(options);
        return CpuRuntime.Start(options);
    }

    /// <summary>
    /// For allocation tests: a loaded machine may stall a CPU past the wait warning, and the warning's log string is
    /// not steady-state allocation.
    /// </summary>
    public static void Quiet(CpuRuntimeOptions o)
    {
        o.WaitWarning = TimeSpan.FromMinutes(5);
        o.WaitTimeout = TimeSpan.FromMinutes(10);
    }

    /// <summary>Awaits with the hang detector.</summary>
    public static async Task WithHangDetector(this Task task, [CallerArgumentExpression(nameof(task))] string? what = null)
    {
        // Only the detector's own timeout is a hang: a TimeoutException from the library is the test's result.
        if (await Task.WhenAny(task, Task.Delay(Hang)) != task)
            throw new Xunit.Sdk.XunitException($"Hang detector fired after {Hang}: {what}");
        await task;
    }

    public static async Task<T> WithHangDetector<T>(this Task<T> task, [CallerArgumentExpression(nameof(task))] string? what = null)
    {
        await ((Task)task).WithHangDetector(what);
        return await task;
    }

    /// <summary>
    /// Blocks <paramref name="cpu"/> inside an IPI function until <paramref name="release"/> is set, and returns once it
    /// is blocked: messages sent to it after this call queue up behind the blocked function, whatever the timing.
    /// </summary>
    public static void Block(Cpu cpu, ManualResetEventSlim release)
    {
        using var blocked = new ManualResetEventSlim();
        cpu.Send(static (o, _) =>
        {
            var (b, r) = ((ManualResetEventSlim, ManualResetEventSlim))o!;
            b.Set();
            r.Wait();
        }, (blocked, release));
        blocked.WaitOrFail($"CPU {cpu.Id} to block");
    }

    /// <summary>Blocks (off-CPU) until the event is set, with the hang detector.</summary>
    public static void WaitOrFail(this ManualResetEventSlim e, string what)
    {
        if (!e.Wait(Hang)) throw new Xunit.Sdk.XunitException($"Hang detector fired after {Hang}: {what}");
    }
}

/// <summary>Heavy multi-threaded tests run one at a time so they do not starve each other on two cores.</summary>
[CollectionDefinition("Stress", DisableParallelization = true)]
public sealed class StressCollection;
