namespace PerCpu.Cli.Demo;

/// <summary>
/// A workload that uses every mechanism of the runtime at once, so that the live table has something to show:
/// <list type="bullet">
/// <item>on every CPU, a pump (an async function started with <c>InvokeAsync</c>, so its awaits resume on that CPU) that
/// in each round sends a storm to every other CPU: normal sends past half the ring (fifo full), passive sends, try-sends
/// until one is refused; schedules a soft interrupt at every level (one of them asynchronous, so it blocks its level
/// for a while) and one on the next CPU; every few rounds awaits a call on the next CPU (the reply comes back through
/// the reverse ring) or broadcasts with <c>SendToMask</c>, and now and then sends a function that throws (counted as an
/// error; the CPU goes on). It yields between rounds and sleeps every fourth, so CPUs park and get woken;</item>
/// <item>on a thread that is not a CPU (a driver, like a timer interrupt): calls into CPUs with <c>InvokeAsync</c>,
/// broadcasts, clock-level soft interrupts directed with <c>ScheduleOn</c>, and cpusync with <c>RunOnAllAsync</c>.</item>
/// </list>
/// </summary>
internal sealed class DemoWorkload
{
    /// <summary>Normal sends per peer and round: twice the half of the default 512-slot ring, so senders hit fifo-full.</summary>
    private const int NormalBurst = 1024;
    private const int PassiveBurst = 128;
    private const int TryBurst = 1024;

    /// <summary>Longs between two CPUs' counters in <see cref="_hits"/> (128 bytes: no false sharing).</summary>
    private const int Stride = 16;

    private static readonly Action<object?, long> s_hit = static (state, _) => ((DemoWorkload)state!).Hit();
    private static readonly Action<object?, long> s_throw = static (_, _) =>
        throw new InvalidOperationException("A deliberate error from the demo: the CPU counts it, reports it, and goes on.");
    private static readonly Action<object?> s_softHandler = static state => ((DemoWorkload)state!).Hit();
    private static readonly Func<object?, ValueTask> s_blockingSoftHandler = static async state =>
    {
        await Task.Yield(); // resumes on this CPU: until then the level is blocked here (a "block")
        ((DemoWorkload)state!).Hit();
    };
    private static readonly Action<object?> s_syncFunc = static state => ((DemoWorkload)state!).Hit();

    private readonly CpuRuntime _runtime;

    /// <summary>Messages and handlers run, per CPU at <c>id * Stride</c>; each CPU writes only its own slot.</summary>
    private readonly long[] _hits;

    /// <summary>One soft interrupt per level (by <see cref="SoftLevel"/> value); <see cref="SoftLevel.Bio"/>'s is asynchronous.</summary>
    private readonly SoftInterrupt[] _softInterrupts;

    /// <summary>Set by <see cref="StopAsync"/>; the pumps and the driver finish their round and return.</summary>
    private volatile bool _stopping;

    private Task[] _pumps = [];
    private Task _driver = Task.CompletedTask;

    /// <summary>Workload-level counts (atomics; read for the summary).</summary>
    private long _invokes, _broadcasts, _syncs, _softSchedules, _rounds;

    private DemoWorkload(CpuRuntime runtime)
    {
        _runtime = runtime;
        _hits = new long[runtime.CpuCount * Stride];
        _softInterrupts = new SoftInterrupt[4];
        foreach (SoftLevel level in Enum.GetValues<SoftLevel>())
        {
            _softInterrupts[(int)level] = level == SoftLevel.Bio
                ? runtime.Establish(level, s_blockingSoftHandler, this)
                : runtime.Establish(level, s_softHandler, this);
        }
    }

    /// <summary>Starts the pumps on every CPU and the driver on the thread pool.</summary>
    public static DemoWorkload Start(CpuRuntime runtime)
    {
        var workload = new DemoWorkload(runtime);
        var pumps = new Task[runtime.CpuCount];
        for (int i = 0; i < pumps.Length; i++)
        {
            int id = i;
            pumps[i] = runtime[i].InvokeAsync(() => workload.PumpAsync(id)).AsTask();
        }
        workload._pumps = pumps;
        workload._driver = Task.Run(workload.DriveAsync);
        return workload;
    }

    /// <summary>Calls made with <c>InvokeAsync</c> (CPU to CPU and thread to CPU).</summary>
    public long Invokes => Interlocked.Read(ref _invokes);

    /// <summary>Broadcasts made with <c>SendToMask</c>.</summary>
    public long Broadcasts => Interlocked.Read(ref _broadcasts);

    /// <summary>Synchronizations made with <c>RunOnAllAsync</c>.</summary>
    public long Syncs => Interlocked.Read(ref _syncs);

    /// <summary>Soft interrupt schedules requested (coalesced ones included).</summary>
    public long SoftSchedules => Interlocked.Read(ref _softSchedules);

    /// <summary>Pump rounds completed on all CPUs.</summary>
    public long Rounds => Interlocked.Read(ref _rounds);

    /// <summary>Messages and handlers the workload's functions ran (a check against the runtime's own counts).</summary>
    public long Hits
    {
        get
        {
            long sum = 0;
            for (int i = 0; i < _hits.Length; i += Stride) sum += Volatile.Read(ref _hits[i]);
            return sum;
        }
    }

    /// <summary>Stops the pumps and the driver, then disestablishes the soft interrupts. Rethrows what a pump threw.</summary>
    public async Task StopAsync()
    {
        _stopping = true;
        try
        {
            await Task.WhenAll([.. _pumps, _driver]).ConfigureAwait(false);
        }
        finally
        {
            foreach (SoftInterrupt softInterrupt in _softInterrupts) await softInterrupt.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void Hit() => _hits[Cpu.Current!.Id * Stride]++;

    /// <summary>One CPU's loop; runs on that CPU (its awaits resume there).</summary>
    private async ValueTask PumpAsync(int id)
    {
        CpuRuntime runtime = _runtime;
        int n = runtime.CpuCount;
        Cpu next = runtime[(id + 1) % n];
        Func<long> probe = () => Volatile.Read(ref _hits[Cpu.Current!.Id * Stride]);
        // At least one round, however soon the demo stops: every mechanism runs at least once on every CPU.
        long round = 0;
        do
        {
            // The storm: to every other CPU, starting with the next one.
            for (int k = 1; k < n; k++)
            {
                Cpu target = runtime[(id + k) % n];
                for (int i = 0; i < NormalBurst; i++) target.Send(s_hit, this, i);
                for (int i = 0; i < PassiveBurst; i++) target.SendPassive(s_hit, this, i);
                for (int i = 0; i < TryBurst && target.TrySend(s_hit, this, i); i++) { }
            }

            // Soft interrupts: every level here (highest runs first), and one directed at the next CPU.
            foreach (SoftInterrupt softInterrupt in _softInterrupts) softInterrupt.Schedule();
            _softInterrupts[(int)SoftLevel.Net].ScheduleOn(next);
            Interlocked.Add(ref _softSchedules, _softInterrupts.Length + 1);

            if ((round & 7) == 7)
            {
                await next.InvokeAsync(probe); // a call with a result, CPU to CPU
                Interlocked.Increment(ref _invokes);
            }
            if ((round & 15) == 15)
            {
                runtime.SendToMask(runtime.AllCpus, s_hit, this);
                Interlocked.Increment(ref _broadcasts);
            }
            if (id == 0 && (round & 1023) == 1023) next.Send(s_throw);
            Interlocked.Increment(ref _rounds);

            // Idle now and then, so that CPUs park and senders have to wake them (wakes vs avoided wakes).
            if ((round & 3) == 3) await Task.Delay(1);
            else await Task.Yield();
            round++;
        }
        while (!_stopping);
    }

    /// <summary>The outside world: a thread that is not a CPU, calling in every few milliseconds.</summary>
    private async Task DriveAsync()
    {
        CpuRuntime runtime = _runtime;
        Func<long> probe = () => Volatile.Read(ref _hits[Cpu.Current!.Id * Stride]);
        int tick = 0;
        do // at least once: a call, a clock soft interrupt, a broadcast and a cpusync from outside
        {
            Cpu cpu = runtime[tick % runtime.CpuCount];
            await cpu.InvokeAsync(probe).ConfigureAwait(false);
            Interlocked.Increment(ref _invokes);
            _softInterrupts[(int)SoftLevel.Clock].ScheduleOn(cpu); // like a clock interrupt handing work to its soft level
            Interlocked.Increment(ref _softSchedules);
            runtime.SendToMask(runtime.AllCpus, s_hit, this);
            Interlocked.Increment(ref _broadcasts);
            if ((tick & 3) == 0)
            {
                await runtime.RunOnAllAsync(runtime.AllCpus, s_syncFunc, this).ConfigureAwait(false);
                Interlocked.Increment(ref _syncs);
            }
            await Task.Delay(5).ConfigureAwait(false);
            tick++;
        }
        while (!_stopping);
    }
}
