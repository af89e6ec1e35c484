using PerCpu.SoftInterrupts;

namespace PerCpu;

// Timers at the runtime level: the softclock soft interrupt (one handle for every CPU, like NetBSD's softclock), the
// shutdown freeze of timers, and the deferred wake that gives passive messages their "within one tick" bound now that a
// parked CPU has no tick (tickless idle).
public sealed partial class CpuRuntime
{
    internal sealed partial class Shared
    {
        /// <summary>
        /// Softclock: the <see cref="SoftLevel.Clock"/> soft interrupt that fires each CPU's due callouts. Established at
        /// the first timer armed on any CPU (it takes one slot of <see cref="CpuRuntimeOptions.MaxSoftInterrupts"/>),
        /// published with a release store, never replaced; read by the CPUs (after their own first arm, which
        /// established it or saw it published).
        /// </summary>
        private SoftInterrupt? _softClock;

        internal SoftInterrupt? SoftClock => Volatile.Read(ref _softClock);

        private readonly Lock _establishLock = new();

        /// <summary>The softclock handle, established on first use (a lock, once per runtime).</summary>
        internal SoftInterrupt GetSoftClock(CpuRuntime runtime) => Volatile.Read(ref _softClock) ?? Establish(runtime, ref _softClock, SoftLevel.Clock, s_softclock);

        /// <summary>
        /// Establishes a runtime-wide handle into <paramref name="field"/> once: under a lock (the first use on any CPU),
        /// published with a release store so that a CPU reading it sees a complete handle.
        /// </summary>
        private SoftInterrupt Establish(CpuRuntime runtime, ref SoftInterrupt? field, SoftLevel level, Action<object?> handler)
        {
            lock (_establishLock)
            {
                SoftInterrupt? handle = field;
                if (handle == null)
                {
                    handle = runtime.EstablishInternal(level, handler);
                    Volatile.Write(ref field, handle);
                }
                return handle;
            }
        }

        private static readonly Action<object?> s_softclock = static _ => Cpu.Current!.RunCallouts();

        /// <summary>
        /// Softnet: the <see cref="SoftLevel.Net"/> soft interrupt that processes each CPU's ready sockets (Cpu.Io.cs).
        /// Established at the first readiness on any CPU, like <see cref="_softClock"/>, and published the same way.
        /// </summary>
        private SoftInterrupt? _softNet;

        /// <summary>The softnet handle, established on first use (a lock, once per runtime).</summary>
        internal SoftInterrupt GetSoftNet(CpuRuntime runtime) => Volatile.Read(ref _softNet) ?? Establish(runtime, ref _softNet, SoftLevel.Net, s_softnet);

        private static readonly Action<object?> s_softnet = static _ => Cpu.Current!.RunSoftNet();

        /// <summary>
        /// Set by the disposer once the CPUs are quiescent and about to stop (phase 2 of <see cref="DisposeCoreAsync"/>),
        /// cleared again if that check fails: from then on no callout fires (a timer must not start new work after
        /// the runtime decided that nothing is left to run) and idle ignores timer deadlines. Read by the CPUs.
        /// </summary>
        public volatile bool TimersFrozen;

        // ---- deferred passive wakes ----

        /// <summary>
        /// Bit c: a passive message was published to CPU c while it was parked, and nobody has woken it since. Set by
        /// senders (any thread) with <see cref="Interlocked.Or(ref long, long)"/>, taken by <see cref="OnDeferredWakes"/>
        /// with <see cref="Interlocked.Exchange(ref long, long)"/>.
        /// </summary>
        private long[] _deferredWakes = [];

        /// <summary>1 while <see cref="_deferTimer"/> is armed for the bits set. CAS by senders, cleared by the timer callback.</summary>
        private int _deferArmed;

        /// <summary>The one-shot timer that delivers deferred wakes a <see cref="CpuRuntimeOptions.TickInterval"/> after the first deferral; null for a manual runtime.</summary>
        private Timer? _deferTimer;

        /// <summary>Called once by the runtime's constructor, before any CPU runs.</summary>
        internal void InitializeDeferredWakes(int cpuCount, bool manual)
        {
            _deferredWakes = new long[(cpuCount + 63) >> 6];
            if (manual) return;
            // No execution context: the callbacks must not carry the creating thread's AsyncLocals.
            using (ExecutionContext.SuppressFlow())
                _deferTimer = new Timer(static s => ((Shared)s!).OnDeferredWakes(), this, Timeout.Infinite, Timeout.Infinite);
        }

        /// <summary>
        /// A passive message was published to <paramref name="target"/> and the sender then read it Parked (the read
        /// follows the publication in the sender's program order: see <see cref="Cpu.DeferPassiveWake"/>). Passive means
        /// "do not wake it now", and the target, tickless, may sleep forever: so arrange one wake a tick from now, which
        /// keeps the promise that a passive message runs within one <see cref="CpuRuntimeOptions.TickInterval"/>.
        /// Any thread; no allocation; one locked Or per target per tick and one timer change per tick for the runtime.
        /// </summary>
        internal void DeferWake(Cpu target)
        {
            if (_deferTimer == null) return; // manual runtime: the test drives every CPU
            ref long word = ref _deferredWakes[target.Id >> 6];
            long bit = 1L << (target.Id & 63);
            // Full fence (locked Or) when we set the bit: ordered before our read of _deferArmed, against the callback's
            // clear-then-exchange, so that either the callback's exchange takes our bit or we see the timer unarmed and
            // arm it. A bit already set belongs to a deferral whose callback has not taken it yet: it wakes this target.
            if ((Volatile.Read(ref word) & bit) == 0) Interlocked.Or(ref word, bit);
            if (Volatile.Read(ref _deferArmed) == 0 && Interlocked.CompareExchange(ref _deferArmed, 1, 0) == 0)
            {
                try
                {
                    _deferTimer.Change(Options.TickInterval, Timeout.InfiniteTimeSpan);
                }
                catch (ObjectDisposedException)
                {
                    // The runtime stopped: nothing is left to wake.
                }
            }
        }

        /// <summary>The deferral timer (thread pool): wakes every CPU a passive message was deferred for, if it still sleeps.</summary>
        private void OnDeferredWakes()
        {
            // Clear the armed flag first, then take the bits (full fences both): a deferral that sets a bit after our
            // exchange reads the flag clear and arms the timer again (see DeferWake).
            Volatile.Write(ref _deferArmed, 0);
            Interlocked.MemoryBarrier();
            Cpu[] cpus = Cpus;
            for (int w = 0; w < _deferredWakes.Length; w++)
            {
                long bits = Interlocked.Exchange(ref _deferredWakes[w], 0);
                while (bits != 0)
                {
                    int b = System.Numerics.BitOperations.TrailingZeroCount(bits);
                    bits &= bits - 1;
                    // The ordinary claimed wake (CAS Parked->Awake): a CPU that woke meanwhile costs a read.
                    if (cpus[(w << 6) + b].TryWake()) Interlocked.Increment(ref External.WakesSent);
                }
            }
        }

        /// <summary>Stops the deferral timer once the CPUs have stopped.</summary>
        internal void DisposeDeferredWakes() => _deferTimer?.Dispose();
    }

    /// <summary>Establishes a runtime-internal soft interrupt: like Establish, but allowed while the runtime is being disposed (its CPUs still run work).</summary>
    internal SoftInterrupt EstablishInternal(SoftLevel level, Action<object?> handler)
    {
        SoftInterruptTable table = SoftInterruptTableOrNull ?? CreateSoftInterruptTable();
        return table.Add(static (t, slot, s) => new SoftInterrupt(t, slot, s.level, s.handler, null), (level, handler));
    }
}
