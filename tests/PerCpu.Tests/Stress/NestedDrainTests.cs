namespace PerCpu.Tests.Stress;

/// <summary>
/// Liveness of nested drains: a send that waits for room drains the sender's own incoming queue, and the functions it
/// runs there may send and wait again. Two CPUs doing that at each other must never deadlock.
/// </summary>
public sealed class NestedDrainTests
{
    private sealed class Counts
    {
        public long Forwarders, Replies, Echoes, Errors;
        public CpuRuntime Runtime = null!;
    }

    private static readonly Action<object?, long> s_echo = static (o, _) => Interlocked.Increment(ref ((Counts)o!).Echoes);

    /// <summary>
    /// On CPU 0: every second reply sends an echo to CPU 1 (so CPU 0's waits nest half as deep, and the last reply it
    /// takes is one that waits: a drain that ran to its end would publish).
    /// </summary>
    private static readonly Action<object?, long> s_reply = static (o, _) =>
    {
        var c = (Counts)o!;
        if ((Interlocked.Increment(ref c.Replies) & 1) == 0) c.Runtime[1].Send(s_echo, c);
    };

    /// <summary>On CPU 1: sends two replies to CPU 0.</summary>
    private static readonly Action<object?, long> s_forwarder = static (o, _) =>
    {
        var c = (Counts)o!;
        Interlocked.Increment(ref c.Forwarders);
        c.Runtime[0].Send(s_reply, c);
        c.Runtime[0].Send(s_reply, c);
    };

    /// <summary>
    /// A deadlock of nested waits, built step by step with 16-slot rings so that it does not depend on timing; the same
    /// shape as MutualFlood's rare <c>TimeoutException</c> ("has waited for room … 5 behind": the flood loop's own wait,
    /// which times out right after the nested ones). CPU 1 is held. CPU 0 sends 9 forwarders to it (past half full),
    /// and its 10th send waits, draining CPU 0's own inbox: there a function sends 5 more (a nested send may fill to
    /// capacity - 3: 14 in the ring), and then CPU 0 is held too. CPU 1, let go, runs the forwarders: each sends two
    /// replies to CPU 0, so its ring to CPU 0 passes half full and it waits, draining its own queue, i.e. the other
    /// forwarders, which send and wait in turn, until it has taken all 14 from the 0->1 ring without publishing those
    /// reads (the read index goes out every 32 entries or when a drain ends, and every drain is still inside a
    /// function). CPU 0, let go, runs the replies: by its view the 0->1 ring still holds 14, so each echo waits,
    /// draining the next replies, until it has taken all of them, again without publishing. Each CPU then waits for
    /// room that only the other's unpublished reads would show, and neither can write anything new for the other's
    /// innermost drain to find. Everything accepted must run, with no error.
    /// </summary>
    [Fact]
    public async Task MutualNestedWaits_WithReadsNotYetPublished_DoNotDeadlock()
    {
        // A long WaitTimeout: CPU 0's first wait lasts the whole construction, however slow a loaded machine makes it.
        await using var runtime = TestUtil.Start(2, o => { o.FifoCapacity = 16; o.WaitTimeout = TimeSpan.FromSeconds(30); });
        var counts = new Counts { Runtime = runtime };
        runtime.UnhandledException += (_, _) => Interlocked.Increment(ref counts.Errors);
        using var gate1 = new ManualResetEventSlim();
        using var gate0 = new ManualResetEventSlim();
        TestUtil.Block(runtime[1], gate1);
        Task flood = runtime[0].InvokeAsync(() =>
        {
            for (int i = 0; i < 10; i++) runtime[1].Send(s_forwarder, counts); // the 10th waits: CPU 1 is held
        }).AsTask();
        // Queued behind the call above, so it runs inside its 10th send's wait: 5 more forwarders (a nested send may fill
        // to 14 of 16), published as the end of a pass would, then CPU 0 is held there.
        using var held0 = new ManualResetEventSlim();
        runtime[0].Send(static (o, _) =>
        {
            var (c, gate, held) = ((Counts, ManualResetEventSlim, ManualResetEventSlim))o!;
            for (int i = 0; i < 5; i++) c.Runtime[1].Send(s_forwarder, c);
            Cpu.Current!.FlushAll();
            held.Set();
            gate.WaitOrFail("the test lets CPU 0 go");
        }, (counts, gate0, held0));
        held0.WaitOrFail("CPU 0 is held");
        Assert.Equal(1, runtime[0].GetStatistics().FifoFull); // inside its 10th send's wait
        gate1.Set();
        // CPU 1 takes all 14 forwarders: each of them has started.
        await Progress.WaitUntil(() => Interlocked.Read(ref counts.Forwarders), 14);
        gate0.Set();
        // Every echo runs, or an error (a wait that timed out inside a function) ends the wait at once.
        await Progress.WaitUntil(() => Interlocked.Read(ref counts.Errors) > 0 ? long.MaxValue : Interlocked.Read(ref counts.Echoes), 15);
        await flood.WithHangDetector();
        await runtime[0].InvokeAsync(() => runtime[1].WaitFor(runtime[1].Send(s_echo, counts))).AsTask().WithHangDetector();
        Assert.Equal(0, Interlocked.Read(ref counts.Errors));
        Assert.Equal(15, Interlocked.Read(ref counts.Forwarders));
        Assert.Equal(30, Interlocked.Read(ref counts.Replies));
        Assert.Equal(16, Interlocked.Read(ref counts.Echoes));
    }
}
