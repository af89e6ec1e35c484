using System.Diagnostics;
using System.Reflection;
using System.Runtime.CompilerServices;

namespace PerCpu.Tests;

/// <summary>
/// Shared helpers. A timeout here is a hang detector for a single event (one message, one call, one state change):
/// if it fires, there is a real bug. A test that waits for a workload uses <see cref="Progress"/> instead.
/// </summary>
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

/// <summary>
/// Reads a CPU's idle state from outside, for tests of idling: private fields, read by reflection so that a rename
/// fails these tests with a clear message instead of breaking the build.
/// </summary>
internal static class IdleProbe
{
    private const BindingFlags Private = BindingFlags.NonPublic | BindingFlags.Instance;

    private static FieldInfo Field(Type type, string name)
        => type.GetField(name, Private) ?? throw new Xunit.Sdk.XunitException($"{type.Name}.{name} is gone: update {nameof(IdleProbe)} to the idle state's new home.");

    /// <summary>
    /// True while the CPU's interlock state says Parked (a sender would have to wake it): from its Parked store, before
    /// its last look for work, until it wakes.
    /// </summary>
    public static bool IsParked(Cpu cpu)
        => ((PerCpu.Ipi.PaddedLong)Field(typeof(Cpu), "_state").GetValue(cpu)!).Value == Cpu.StateParked;

    /// <summary>
    /// True while the CPU's thread is past its last look for work and in (or entering) its sleep: its parker's word
    /// says Parked. Work published now reaches it only through a wake or its tick.
    /// </summary>
    public static bool IsAsleep(Cpu cpu)
    {
        object parker = Field(typeof(Cpu), "_parker").GetValue(cpu)!;
        var storage = (int[])Field(parker.GetType(), "_storage").GetValue(parker)!;
        return Volatile.Read(ref storage[16]) == -1; // Parker keeps its state word in element 16; -1 = Parked
    }

    /// <summary>Waits until the CPU sleeps (a single event: the hang detector bounds it).</summary>
    public static void WaitUntilAsleep(Cpu cpu)
    {
        if (!SpinWait.SpinUntil(() => IsAsleep(cpu), TestUtil.Hang))
            throw new Xunit.Sdk.XunitException($"Hang detector fired after {TestUtil.Hang}: CPU {cpu.Id} never went to sleep.");
    }
}

/// <summary>
/// Hang detection by lack of progress: a workload on a loaded machine may take any time, so a test that waits for one
/// fails only when the value it watches (a counter of messages run, rounds done, …) has not changed for a whole stall
/// period, never because the workload as a whole took longer than some deadline.
/// </summary>
internal static class Progress
{
    /// <summary>How long a watched value may stand still before the wait fails.</summary>
    public static readonly TimeSpan DefaultStall = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Everything a runtime does, summed: messages sent and run, cpusyncs, soft interrupt runs. For a workload whose
    /// own counters are not at hand; a deadlock freezes it, any step of work moves it.
    /// </summary>
    public static Func<long> Of(CpuRuntime runtime) => () =>
    {
        CpuStatistics s = runtime.GetStatistics();
        long n = s.Sent + s.Received + s.CpuSyncs;
        foreach (SoftLevel level in Enum.GetValues<SoftLevel>()) n += runtime.GetSoftInterruptStatistics(level).Count;
        return n;
    };

    /// <summary>How often the watched value is read (polling the condition, not a delay the outcome depends on).</summary>
    private static readonly TimeSpan s_poll = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// Returns once <paramref name="observe"/>() reaches <paramref name="target"/>; fails only if the observed value has
    /// not changed for <paramref name="stallAfter"/> (default <see cref="DefaultStall"/>).
    /// </summary>
    public static async Task WaitUntil(Func<long> observe, long target, TimeSpan? stallAfter = null,
        [CallerArgumentExpression(nameof(observe))] string? what = null)
    {
        var watch = new Watch(observe, stallAfter, what);
        while (watch.Last < target)
        {
            await Task.Delay(s_poll).ConfigureAwait(false);
            watch.Check($"reached {watch.Last} of {target}");
        }
    }

    /// <summary>
    /// Returns once <paramref name="done"/>() holds; fails only if <paramref name="observe"/>() has not changed for
    /// <see cref="DefaultStall"/>. <paramref name="what"/> is built when it fails, so it may report what went wrong meanwhile.
    /// </summary>
    public static async Task Until(Func<bool> done, Func<long> observe, Func<string> what)
    {
        var watch = new Watch(observe, null, null);
        while (!done())
        {
            await Task.Delay(s_poll).ConfigureAwait(false);
            if (!done()) watch.Check(what());
        }
    }

    /// <inheritdoc cref="Until(Func{bool}, Func{long}, Func{string})"/>
    public static Task Until(Func<bool> done, Func<long> observe, string what) => Until(done, observe, () => what);

    /// <summary>
    /// Awaits <paramref name="task"/> (a workload); fails only if it is not complete and <paramref name="observe"/>()
    /// has not changed for <paramref name="stallAfter"/>. An exception of the task is the test's result.
    /// </summary>
    public static async Task Await(Task task, Func<long> observe, TimeSpan? stallAfter = null,
        [CallerArgumentExpression(nameof(task))] string? what = null)
    {
        var watch = new Watch(observe, stallAfter, what);
        while (!task.IsCompleted)
        {
            await Task.WhenAny(task, Task.Delay(s_poll)).ConfigureAwait(false);
            if (!task.IsCompleted) watch.Check("not complete");
        }
        await task.ConfigureAwait(false);
    }

    /// <inheritdoc cref="Await(Task, Func{long}, TimeSpan?, string?)"/>
    public static async Task<T> Await<T>(Task<T> task, Func<long> observe, TimeSpan? stallAfter = null,
        [CallerArgumentExpression(nameof(task))] string? what = null)
    {
        await Await((Task)task, observe, stallAfter, what).ConfigureAwait(false);
        return await task.ConfigureAwait(false);
    }

    /// <summary>Blocking form of <see cref="WaitUntil"/>, for a thread that must not return to its caller meanwhile.</summary>
    public static void SpinUntil(Func<long> observe, long target, TimeSpan? stallAfter = null,
        [CallerArgumentExpression(nameof(observe))] string? what = null)
    {
        var watch = new Watch(observe, stallAfter, what);
        var spinner = new SpinWait();
        while (watch.Last < target)
        {
            spinner.SpinOnce(sleep1Threshold: -1);
            watch.Check($"reached {watch.Last} of {target}");
        }
    }

    private sealed class Watch(Func<long> observe, TimeSpan? stallAfter, string? what)
    {
        private readonly TimeSpan _stall = stallAfter ?? DefaultStall;
        private long _changed = Stopwatch.GetTimestamp();
        public long Last = observe();

        /// <summary>Reads the value again; throws if it has stood still for the stall period.</summary>
        public void Check(string state)
        {
            long now = observe();
            if (now != Last)
            {
                Last = now;
                _changed = Stopwatch.GetTimestamp();
            }
            else if (Stopwatch.GetElapsedTime(_changed) >= _stall)
            {
                throw new Xunit.Sdk.XunitException($"No progress for {_stall.TotalSeconds:F0} s: {what} ({state}; the watched value stayed at {Last}).");
            }
        }
    }
}

/// <summary>Heavy multi-threaded tests run one at a time so they do not starve each other on two cores.</summary>
[CollectionDefinition("Stress", DisableParallelization = true)]
public sealed class StressCollection;
