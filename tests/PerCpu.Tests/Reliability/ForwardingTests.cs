using System.Collections.Concurrent;

namespace PerCpu.Tests.Reliability;

/// <summary>
/// Issue 11 A and B: sends made while a CPU waits for room (nested in a drain) never fail for depth, never deadlock
/// and never lose a message; chains and cycles of CPUs that forward everything they receive finish.
/// </summary>
[Collection("Stress")]
public sealed class ForwardingTests
{
    private sealed class Ledger
    {
        public long Ran;
        public long Forwarded;
        public long Hops;
        public readonly ConcurrentQueue<Exception> Errors = new();
    }

    /// <summary>
    /// The reproduction from the review: an outside thread sends to CPU 0, each message forwards to CPU 1, whose
    /// function is slow. Today CPU 0 nests waits for room 16 deep and then throws from Send, losing the message.
    /// </summary>
    [Fact]
    public async Task ForwardingToASlowCpu_NeverThrows_AndLosesNothing()
    {
        const int Messages = 50_000;
        var ledger = new Ledger();
        await using var runtime = TestUtil.Start(2, o => { o.FifoCapacity = 64; TestUtil.Quiet(o); });
        runtime.UnhandledException += (_, e) => ledger.Errors.Enqueue(e.Exception);
        var sender = Task.Factory.StartNew(() =>
        {
            for (int i = 0; i < Messages; i++)
                runtime[0].Send(static (o, _) =>
                {
                    var l = (Ledger)o!;
                    Cpu.Current!.Runtime[1].Send(static (o2, _) =>
                    {
                        Thread.SpinWait(200);
                        Interlocked.Increment(ref ((Ledger)o2!).Ran);
                    }, l);
                    Interlocked.Increment(ref l.Forwarded);
                }, ledger);
        }, TaskCreationOptions.LongRunning);
        await Progress.Until(() => Volatile.Read(ref ledger.Ran) == Messages && sender.IsCompleted,
            () => Volatile.Read(ref ledger.Ran) + Volatile.Read(ref ledger.Forwarded), () => $"forwarding to a slow CPU ({ledger.Errors.Count} errors: {ledger.Errors.FirstOrDefault()})");
        await sender;
        Assert.Empty(ledger.Errors);
        Assert.Equal(Messages, ledger.Forwarded);
        Assert.Equal(Messages, ledger.Ran);
    }

    /// <summary>
    /// CPUs in a ring each forward every message to the next until its hop count runs out. Each CPU's ring to its
    /// successor fills while the successor waits on its own successor: a cycle of waits that only nested drains break.
    /// </summary>
    [Theory]
    [InlineData(3, 16, 20_000, 24)]
    [InlineData(3, 512, 20_000, 24)]
    [InlineData(4, 16, 10_000, 40)]
    [InlineData(2, 16, 20_000, 30)]
    public async Task CycleOfForwardingCpus_Finishes(int cpus, int capacity, int messages, int hops)
    {
        var ledger = new Ledger();
        await using var runtime = TestUtil.Start(cpus, o => { o.FifoCapacity = capacity; TestUtil.Quiet(o); });
        runtime.UnhandledException += (_, e) => ledger.Errors.Enqueue(e.Exception);
        var injectors = new Task[cpus];
        for (int c = 0; c < cpus; c++)
        {
            int start = c;
            // Each CPU injects from a task on itself: top-level sends that must wait for room, while the cycle
            // brings messages back to it.
            injectors[c] = runtime[start].InvokeAsync(() =>
            {
                Cpu self = Cpu.Current!;
                Cpu next = self.Runtime[(self.Id + 1) % self.Runtime.CpuCount];
                for (int i = 0; i < messages / cpus; i++) next.Send(Hop, ledger, hops);
            }).AsTask();
        }
        long expected = (long)(messages / cpus) * cpus * hops;
        await Progress.Until(() => Volatile.Read(ref ledger.Hops) == expected && injectors.All(t => t.IsCompleted),
            () => Volatile.Read(ref ledger.Hops), () => $"a cycle of {cpus} forwarding CPUs at capacity {capacity} ({ledger.Errors.Count} errors: {ledger.Errors.FirstOrDefault()})");
        await Task.WhenAll(injectors);
        Assert.Empty(ledger.Errors);
        Assert.Equal(expected, Volatile.Read(ref ledger.Hops));
    }

    private static void Hop(Ledger l, long hops)
    {
        Interlocked.Increment(ref l.Hops);
        if (hops <= 1) return;
        Cpu self = Cpu.Current!;
        self.Runtime[(self.Id + 1) % self.Runtime.CpuCount].Send(Hop, l, hops - 1);
    }

    /// <summary>A chain 0 -> 1 -> 2 -> 3 where every CPU forwards and the last is slow; fed from outside.</summary>
    [Fact]
    public async Task ChainOfForwardingCpus_Finishes()
    {
        const int Messages = 20_000;
        var ledger = new Ledger();
        await using var runtime = TestUtil.Start(4, o => { o.FifoCapacity = 16; TestUtil.Quiet(o); });
        runtime.UnhandledException += (_, e) => ledger.Errors.Enqueue(e.Exception);
        var sender = Task.Factory.StartNew(() =>
        {
            for (int i = 0; i < Messages; i++) runtime[0].Send(Chain, ledger, 3);
        }, TaskCreationOptions.LongRunning);
        await Progress.Until(() => Volatile.Read(ref ledger.Ran) == Messages && sender.IsCompleted,
            () => Volatile.Read(ref ledger.Hops), () => $"a chain of forwarding CPUs ({ledger.Errors.Count} errors: {ledger.Errors.FirstOrDefault()})");
        await sender;
        Assert.Empty(ledger.Errors);
        Assert.Equal(Messages * 4L, Volatile.Read(ref ledger.Hops));
    }

    private static void Chain(Ledger l, long left)
    {
        Interlocked.Increment(ref l.Hops);
        if (left == 0)
        {
            Thread.SpinWait(100);
            Interlocked.Increment(ref l.Ran);
            return;
        }
        Cpu self = Cpu.Current!;
        self.Runtime[self.Id + 1].Send(Chain, l, left - 1);
    }

    /// <summary>
    /// Issue 11 B: a CPU blocked inside a function that came through a ring has published that it took that entry,
    /// so the producer's room (and TrySend's two-thirds refusal point) does not depend on the ring's history.
    /// </summary>
    [Fact]
    public async Task TrySend_RefusesAtTwoThirds_WhenTheTargetIsBlockedInAFunctionFromTheSameRing()
    {
        const int Capacity = 64;
        await using var runtime = TestUtil.Start(2, o => { o.FifoCapacity = Capacity; TestUtil.Quiet(o); });
        using var blocked = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        int accepted = await runtime[0].InvokeAsync(() =>
        {
            Cpu target = Cpu.Current!.Runtime[1];
            // Shift the ring's indexes off a multiple of the consumer's publication batch first.
            for (int i = 0; i < 5; i++) target.Send(static (_, _) => { });
            target.WaitFor(target.Send(static (_, _) => { }));
            target.Send(static (o, _) =>
            {
                var (b, r) = ((ManualResetEventSlim, ManualResetEventSlim))o!;
                b.Set();
                r.Wait();
            }, (blocked, release));
            return 0;
        });
        blocked.WaitOrFail("CPU 1 to block");
        accepted = await runtime[0].InvokeAsync(() =>
        {
            Cpu target = Cpu.Current!.Runtime[1];
            int n = 0;
            while (target.TrySend(static (_, _) => { })) n++;
            return n;
        });
        release.Set();
        // The blocked entry was taken: the ring is empty but for what TrySend put in, which stops at two-thirds.
        Assert.Equal(Capacity * 2 / 3, accepted);
    }
}
