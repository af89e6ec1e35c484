using System.Diagnostics;

namespace PerCpu.Tests.Stress;

/// <summary>
/// Real threads, hundreds of thousands of messages: exactly-once, per-pair FIFO order and liveness. Sized by
/// iterations that take seconds on a quiet machine; a loaded one only makes them slower: each waits for its workload
/// with <see cref="Progress"/>, which fails only when nothing moves for a whole stall period.
/// </summary>
[Collection("Stress")]
public sealed class IpiStressTests
{
    /// <summary>Per-target bookkeeping, touched only by the target CPU (that is the point of a per-CPU runtime).</summary>
    private sealed class Inbox(int sources)
    {
        public readonly long[] Next = new long[sources];
        public long Received;
        public long Errors;
    }

    private sealed class World(int cpus, long perPair)
    {
        public readonly Inbox[] Inboxes = Enumerable.Range(0, cpus).Select(_ => new Inbox(cpus + 8)).ToArray();
        public readonly long PerPair = perPair;
    }

    /// <summary>arg2 = (source << 40) | sequence: the target checks that each source's sequence arrives 0, 1, 2, … exactly once.</summary>
    private static readonly Action<object?, long> s_check = static (o, arg2) =>
    {
        var world = (World)o!;
        Inbox inbox = world.Inboxes[Cpu.Current!.Id];
        int source = (int)(arg2 >> 40);
        long seq = arg2 & ((1L << 40) - 1);
        if (inbox.Next[source] != seq) inbox.Errors++;
        inbox.Next[source] = seq + 1;
        inbox.Received++;
    };

    [Theory]
    [InlineData(4, 16, 20_000)]   // tiny rings: constant backpressure, draining while waiting
    [InlineData(3, 512, 100_000)]  // default rings
    public async Task AllToAll_ExactlyOnce_InOrder(int cpus, int fifo, long perPair)
    {
        await using var runtime = TestUtil.Start(cpus, o => { o.FifoCapacity = fifo; o.IdleSpin = TimeSpan.FromMicroseconds(5); });
        var world = new World(cpus, perPair);
        var drivers = new Task[cpus];
        for (int c = 0; c < cpus; c++)
        {
            drivers[c] = runtime[c].InvokeAsync(() =>
            {
                Cpu self = Cpu.Current!;
                var random = new Random(self.Id);
                for (long i = 0; i < perPair; i++)
                {
                    // Every other CPU once per round, starting at a random one: interleaved, varying order.
                    int start = random.Next(cpus);
                    for (int k = 0; k < cpus; k++)
                    {
                        int t = (start + k) % cpus;
                        if (t != self.Id) self.Runtime[t].Send(s_check, world, ((long)self.Id << 40) | i);
                    }
                }
                self.Runtime.Synchronize();
            }).AsTask();
        }
        await Progress.Await(Task.WhenAll(drivers), Progress.Of(runtime));
        for (int c = 0; c < cpus; c++)
        {
            Inbox inbox = await runtime[c].InvokeAsync(() => world.Inboxes[Cpu.Current!.Id]).AsTask();
            Assert.Equal(0, inbox.Errors);
            Assert.Equal(perPair * (cpus - 1), inbox.Received);
            for (int s = 0; s < cpus; s++) Assert.Equal(s == c ? 0 : perPair, inbox.Next[s]);
        }
    }

    /// <summary>
    /// Two CPUs flood each other from inside IPI functions with rings that are always full: each sender must drain its
    /// own incoming queue while it waits (the seed's rule), or both would wait forever. Every function also sends
    /// from inside a function (re-entrancy).
    /// </summary>
    [Fact]
    public async Task MutualFlood_WithFullRings_MakesProgress()
    {
        await using var runtime = TestUtil.Start(2, o => o.FifoCapacity = 16);
        var world = new World(2, 0);
        const long N = 50_000;
        var flood = new Task[2];
        for (int c = 0; c < 2; c++)
        {
            flood[c] = runtime[c].InvokeAsync(() =>
            {
                Cpu self = Cpu.Current!;
                Cpu other = self.Runtime[1 - self.Id];
                for (long i = 0; i < N; i++)
                {
                    // Re-entrant: the function runs on the other CPU and itself sends an echo back.
                    other.Send(static (o, a) =>
                    {
                        s_check(o, a);
                        Cpu me = Cpu.Current!;
                        me.Runtime[1 - me.Id].Send(static (_, _) => { });
                    }, world, ((long)self.Id << 40) | i);
                }
                self.Runtime.Synchronize();
            }).AsTask();
        }
        await Progress.Await(Task.WhenAll(flood), Progress.Of(runtime));
        for (int c = 0; c < 2; c++)
        {
            Inbox inbox = world.Inboxes[c];
            Assert.Equal(0, inbox.Errors);
            Assert.Equal(N, inbox.Received);
        }
        Assert.True(runtime.GetStatistics().FifoFull > 0);
    }

    /// <summary>Many non-CPU threads send to the CPUs through the bounded inboxes; each thread's messages stay in order.</summary>
    [Fact]
    public async Task OutsideThreads_ExactlyOnce_InOrder_BoundedInbox()
    {
        const int Threads = 4;
        const long PerThread = 40_000;
        await using var runtime = TestUtil.Start(2, o => { o.InboxCapacity = 64; o.IdleSpin = TimeSpan.Zero; });
        var world = new World(2, 0);
        long maxBacklog = 0;
        var senders = Enumerable.Range(0, Threads).Select(t => Task.Factory.StartNew(() =>
        {
            var random = new Random(t);
            var next = new long[2];
            for (long i = 0; i < PerThread * 2; i++)
            {
                int target = next[0] == PerThread ? 1 : next[1] == PerThread ? 0 : random.Next(2);
                runtime[target].Send(s_check, world, ((long)(2 + t) << 40) | next[target]++);
                if ((i & 1023) == 0)
                {
                    Cpu cpu = runtime[target];
                    long backlog = cpu.Inbox.EnqueuedCount - cpu.Inbox.Executed;
                    long seen;
                    while (backlog > (seen = Volatile.Read(ref maxBacklog)) && Interlocked.CompareExchange(ref maxBacklog, backlog, seen) != seen) { }
                }
            }
        }, TaskCreationOptions.LongRunning)).ToArray();
        await Progress.Await(Task.WhenAll(senders), Progress.Of(runtime));
        runtime.Synchronize();
        for (int c = 0; c < 2; c++)
        {
            Inbox inbox = world.Inboxes[c];
            Assert.Equal(0, inbox.Errors);
            Assert.Equal(Threads * PerThread, inbox.Received);
        }
        // Accepted but not yet executed never exceeds the inbox (plus the functions on the CPU's stack).
        Assert.True(maxBacklog <= 64 + 1, $"backlog {maxBacklog}");
    }

    /// <summary>Random parking: CPUs park between bursts (no idle spin), and bursts come from CPUs and outside threads at once.</summary>
    [Fact]
    public async Task RandomParking_NoLostMessages()
    {
        const int Rounds = 3000;
        await using var runtime = TestUtil.Start(3, o => { o.IdleSpin = TimeSpan.Zero; o.TickInterval = TimeSpan.FromSeconds(30); o.StallThreshold = Timeout.InfiniteTimeSpan; });
        using var all = new CountdownEvent(Rounds * 2);
        var outside = Task.Factory.StartNew(() =>
        {
            var random = new Random(5);
            for (int i = 0; i < Rounds; i++)
            {
                Thread.SpinWait(random.Next(0, 4000));
                runtime[random.Next(3)].Send(static (o, _) => ((CountdownEvent)o!).Signal(), all);
            }
        }, TaskCreationOptions.LongRunning);
        var inside = runtime[0].InvokeAsync(async () =>
        {
            var random = new Random(6);
            for (int i = 0; i < Rounds; i++)
            {
                if ((i & 7) == 0) await Task.Yield();
                Thread.SpinWait(random.Next(0, 4000));
                int t = 1 + random.Next(2);
                Cpu.Current!.Runtime[t].Send(static (o, _) => ((CountdownEvent)o!).Signal(), all);
            }
        }).AsTask();
        await Progress.Await(Task.WhenAll(outside, inside), () => all.CurrentCount);
        await Progress.WaitUntil(() => Rounds * 2 - all.CurrentCount, Rounds * 2); // every message ran
        Assert.True(all.IsSet);
    }

    /// <summary>
    /// Lost-wake hunt: two CPUs that park at once when idle (IdleSpin 0) and whose tick is an hour, so a wake-up that
    /// is lost hangs the test instead of being rescued by the tick. Each hop sends a burst of 1-3 messages after a
    /// random spin, so senders meet the target in every phase: running, about to park (clearing its mask bits),
    /// parked, just woken; and a later message of a burst finds its mask bit still set and skips the locked Or.
    /// </summary>
    [Fact]
    public async Task PingPong_RandomParking_NoLostWake()
    {
        const long RoundTrips = 10_000;
        // No rescue by the stall watchdog either: it wakes a parked CPU that leaves published work undrained.
        await using var runtime = TestUtil.Start(2, o => { o.IdleSpin = TimeSpan.Zero; o.TickInterval = TimeSpan.FromHours(1); o.StallThreshold = Timeout.InfiniteTimeSpan; });
        var game = new BurstPingPong(runtime, RoundTrips);
        runtime[0].Send(BurstPingPong.Serve, game, 0);
        await Progress.Await(game.Done.Task, () => Volatile.Read(ref game.Received[0]) + Volatile.Read(ref game.Received[1]));
        Assert.Equal(0, game.Errors);
        Assert.Equal(RoundTrips, game.Received[0]);
        Assert.Equal(RoundTrips, game.Received[1]);
    }

    /// <summary>State of <see cref="PingPong_RandomParking_NoLostWake"/>; each array slot is touched only by its CPU.</summary>
    private sealed class BurstPingPong(CpuRuntime runtime, long roundTrips)
    {
        public readonly TaskCompletionSource Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly long[] Received = new long[2];
        public readonly long[] Next = [1, 1];
        public readonly Random[] Random = [new Random(11), new Random(12)];
        public long Errors;

        /// <summary>A burst's last message (arg2 &gt;= 0: the hop number) serves the ball back; the others (arg2 = -1) only arrive.</summary>
        public static readonly Action<object?, long> Serve = static (o, hop) => ((BurstPingPong)o!).OnServe(hop);

        private static readonly Action<object?, long> Filler = static (_, _) => { };

        private void OnServe(long hop)
        {
            int me = Cpu.Current!.Id;
            if (hop > 0)
            {
                if (Next[me] != hop) Errors++;
                Next[me] = hop + 1;
                Received[me]++;
            }
            if (me == 0 && Received[0] == roundTrips)
            {
                Done.TrySetResult();
                return;
            }
            Random random = Random[me];
            Thread.SpinWait(random.Next(0, 300));
            Cpu other = runtime[1 - me];
            for (int i = random.Next(0, 3); i > 0; i--) other.Send(Filler);
            other.Send(Serve, this, me == 0 ? hop + 1 : hop);
        }
    }

    /// <summary>
    /// A send that races the target's way to park: CPU 1 parks at once when idle (IdleSpin 0) and its tick is an hour,
    /// so nothing but the sender's publication can bring it back. CPU 0 sends one message, spins until it has run, then
    /// sends the next after a pause. The pause adapts so that the sends land at CPU 1's transition from awake to parked
    /// (one pause shorter after a send that had to wake CPU 1, one longer after a send that found it awake), plus a
    /// jitter of up to 8 pauses either way: the publications fall in every phase of CPU 1's return to idle (the end of
    /// its pass, the clearing of its mask bits, the Parked store, the barrier and re-check) wherever that transition lies
    /// on this machine and under whatever load. Every 64th pause is long, so that CPU 1 is deep asleep and the futex
    /// wake is exercised too. A message stranded by a lost mask bit or wake-up never runs: the test fails with the count
    /// reached once a single message has not run for <see cref="StrandedAfter"/>.
    /// <para>
    /// Checked on 2026-12-01 on this 2-vCPU VM against two broken parks, by changing the library (not committed):
    /// the process-wide barrier replaced by a full fence on the parking side only (a one-sided fence), and
    /// <c>RecheckClearedRings</c> not setting the cleared bits again when it finds work. Each failed this test in every
    /// run, within 57, 145 and 436 (one-sided fence) and 4, 42 and 78 (bits not re-set) iterations. The previous
    /// version (fixed random pauses after <c>WaitFor</c>, a million iterations, 36 s when quiet) needed 9 k to 253 k
    /// iterations to catch the one-sided fence: its sends mostly found CPU 1 already parked.
    /// </para>
    /// </summary>
    /// <remarks>
    /// Run twice: with the asymmetric fence (the process-wide barrier on the parking side) and in the symmetric mode
    /// used where that barrier cannot be trusted (ARM64 without membarrier: every sender fences, issue 11 item 10).
    /// The stall watchdog is off: it would rescue a stranded message by waking the CPU again, and hide the bug.
    /// </remarks>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SendsRacingThePark_AreNeverStranded(bool symmetricFence)
    {
        global::PerCpu.Platform.ProcessBarrier.ForceSymmetric = symmetricFence;
        try
        {
            await SendsRacingTheParkCore();
        }
        finally
        {
            global::PerCpu.Platform.ProcessBarrier.ForceSymmetric = false;
        }
    }

    private async Task SendsRacingTheParkCore()
    {
        const int N = 20_000;
        await using var runtime = TestUtil.Start(2, o =>
        {
            o.IdleSpin = TimeSpan.Zero;
            o.TickInterval = TimeSpan.FromHours(1);
            o.StallThreshold = Timeout.InfiniteTimeSpan;
        });
        var ran = new long[1];
        long reached = await Progress.Await(runtime[0].InvokeAsync(() =>
        {
            Cpu self = Cpu.Current!;
            Cpu target = self.Runtime[1];
            var random = new Random(21);
            long wakes = 0;
            int gap = 0;
            for (int i = 0; i < N; i++)
            {
                // As at the start of a dispatch pass: the send below is published at once (the first of a pass is).
                self.FlushAll();
                target.Send(static (o, _) =>
                {
                    long[] r = (long[])o!;
                    Volatile.Write(ref r[0], r[0] + 1);
                }, ran);
                // Aim at the transition: a send that had to wake CPU 1 came late, one that found it awake came early.
                long w = self.Counters.WakesSent;
                gap = Math.Clamp(gap + (w != wakes ? -1 : 1), 0, 4000);
                wakes = w;
                // Spin (not WaitFor, which learns of the run later) until the message has run.
                long start = Stopwatch.GetTimestamp();
                for (int spins = 1; Volatile.Read(ref ran[0]) != i + 1; spins++)
                {
                    if ((spins & 1023) == 0 && Stopwatch.GetElapsedTime(start) >= StrandedAfter)
                    {
                        // Stranded: a fresh publication finds the mask bit clear and wakes CPU 1, so the runtime can shut down.
                        target.Send(static (_, _) => { });
                        return i;
                    }
                    PerCpu.Dispatch.Spin.Pause();
                }
                int pauses = (i & 63) == 63 ? random.Next(0, 2000) : gap + random.Next(-8, 9);
                for (int k = pauses; k > 0; k--) PerCpu.Dispatch.Spin.Pause();
            }
            return N;
        }).AsTask(), () => Volatile.Read(ref ran[0]));
        Assert.Equal(N, reached);
        Assert.Equal(N, await runtime[1].InvokeAsync(() => Volatile.Read(ref ran[0])).AsTask().WithHangDetector());
        // Not vacuous: CPU 1 did park and had to be woken (every 64th pause alone gives it hundreds of chances).
        Assert.True(runtime[0].GetStatistics().WakesSent > 0);
    }

    /// <summary>How long one message of <see cref="SendsRacingThePark_AreNeverStranded(bool)"/> may stay unrun: only a lost wake-up takes this long.</summary>
    private static readonly TimeSpan StrandedAfter = TimeSpan.FromSeconds(30);
}
