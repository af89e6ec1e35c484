using PerCpu.Timers;

namespace PerCpu.Tests.Timers;

/// <summary>
/// The wheel driven by synthetic timestamps (1 unit = 1 ns, 1 ms ticks): no clock, no sleeping, so every test is
/// exact whatever the machine's load.
/// </summary>
public sealed class TimerWheelTests
{
    private const long Ms = 1_000_000;
    private const long Second = 1000 * Ms;
    private const long Day = 86_400 * Second;

    /// <summary>The "now" of the Advance in progress: every Fire checks it is not early.</summary>
    private long _now;

    private readonly List<Node> _fired = [];

    /// <summary>Due times at the moment of firing (a node re-armed in its Fire changes its own).</summary>
    private readonly List<long> _firedDues = [];

    private sealed class Node(TimerWheelTests test, int id) : TimerNode
    {
        public readonly int Id = id;

        /// <summary>Re-arm this far after the firing time (0: don't).</summary>
        public long Period;

        public int Remaining;
        public Action<Node>? OnFire;

        protected internal override void Fire()
        {
            Assert.True(Due <= test._now, $"node {Id} fired early: due {Due}, now {test._now}");
            test._fired.Add(this);
            test._firedDues.Add(Due);
            OnFire?.Invoke(this);
        }
    }

    private sealed class CountingNode : TimerNode
    {
        public long Count;

        protected internal override void Fire() => Count++;
    }

    private TimerWheel NewWheel() => new(startTimestamp: 0, resolution: Ms);

    private int Advance(TimerWheel wheel, long now, int budget = int.MaxValue)
    {
        _now = now;
        return wheel.Advance(now, budget);
    }

    [Fact]
    public void Advance_FiresANodeAtItsExactDueTime_NotOneUnitBefore()
    {
        var wheel = NewWheel();
        // Due in the middle of a tick: the slot is reached before the due time, and must not fire it.
        var node = new Node(this, 1);
        wheel.Add(node, 5 * Ms + 500_000);
        Assert.Equal(0, Advance(wheel, 5 * Ms));
        Assert.Equal(0, Advance(wheel, 5 * Ms + 499_999));
        Assert.True(node.IsArmed);
        Assert.Equal(1, Advance(wheel, 5 * Ms + 500_000));
        Assert.False(node.IsArmed);
        Assert.Equal(0, wheel.Count);
    }

    [Fact]
    public void Advance_FiresEveryNodeDueAtOrBeforeNow_InDueOrder()
    {
        var wheel = NewWheel();
        var random = new Random(7);
        var nodes = new List<Node>();
        for (int i = 0; i < 2000; i++)
        {
            var n = new Node(this, i);
            nodes.Add(n);
            wheel.Add(n, random.NextInt64(0, 20 * Second));
        }
        long now = 10 * Second + 123;
        Advance(wheel, now);
        var expected = nodes.Where(n => n.Due <= now).ToHashSet();
        Assert.Equal(expected.Count, _fired.Count);
        Assert.True(expected.SetEquals(_fired));
        for (int i = 1; i < _fired.Count; i++) Assert.True(_fired[i - 1].Due <= _fired[i].Due, $"fired out of order at {i}");
        Assert.All(nodes.Where(n => n.Due > now), n => Assert.True(n.IsArmed));
        Assert.Equal(nodes.Count - expected.Count, wheel.Count);
    }

    [Fact]
    public void Advance_EqualDueTimes_FireInArmingOrder()
    {
        var wheel = NewWheel();
        var nodes = Enumerable.Range(0, 10).Select(i => new Node(this, i)).ToArray();
        foreach (var n in nodes) wheel.Add(n, 3 * Ms + 7);
        Advance(wheel, 4 * Ms);
        Assert.Equal(nodes, _fired);
    }

    [Fact]
    public void Remove_BeforeDue_PreventsFiring()
    {
        var wheel = NewWheel();
        var kept = new Node(this, 1);
        var removed = new Node(this, 2);
        var far = new Node(this, 3);
        wheel.Add(kept, 10 * Ms);
        wheel.Add(removed, 10 * Ms);
        wheel.Add(far, 100 * Second); // a higher level
        Assert.True(wheel.Remove(removed));
        Assert.True(wheel.Remove(far));
        Assert.False(wheel.Remove(far));
        Advance(wheel, 200 * Second);
        Assert.Equal(new[] { kept }, _fired);
        Assert.Equal(0, wheel.Count);
    }

    [Fact]
    public void Remove_FromAnotherNodesFire_InTheSameAdvance_PreventsFiring()
    {
        // Both expire in one Advance: the second is already off the wheel (in the expired list) when the first fires.
        var wheel = NewWheel();
        var first = new Node(this, 1);
        var second = new Node(this, 2);
        first.OnFire = _ => Assert.True(wheel.Remove(second));
        wheel.Add(first, 1 * Ms);
        wheel.Add(second, 1 * Ms + 1);
        Assert.Equal(1, Advance(wheel, 2 * Ms));
        Assert.Equal(new[] { first }, _fired);
        Assert.False(second.IsArmed);
        Assert.Equal(0, wheel.Count);
    }

    [Fact]
    public void Fire_ReArmsItself_Periodically_FiringOncePerPeriod_AndCatchingUpAfterAJump()
    {
        var wheel = NewWheel();
        var periodic = new Node(this, 1) { Period = 7 * Ms + 3, Remaining = 100 };
        periodic.OnFire = n =>
        {
            if (--n.Remaining > 0) wheel.Add(n, n.Due + n.Period);
        };
        wheel.Add(periodic, periodic.Period);
        // Small steps: one firing per period.
        for (long now = 0; now < 50 * periodic.Period; now += Ms / 3) Advance(wheel, now);
        Advance(wheel, 50 * periodic.Period);
        Assert.Equal(50, _fired.Count);
        // One big jump past the remaining 50 periods: no period is lost, and no Advance loops on a node that keeps
        // re-arming into the past (those wait for the next call once the wheel has reached now's tick).
        int calls = 0;
        while (periodic.IsArmed)
        {
            Assert.True(Advance(wheel, 200 * periodic.Period) >= 1);
            Assert.True(++calls <= 50);
        }
        Assert.Equal(100, _fired.Count);
    }

    [Fact]
    public void Fire_ReArmingAtOrBeforeNow_FiresOnTheNextAdvance_NotInALoop()
    {
        var wheel = NewWheel();
        var node = new Node(this, 1);
        node.OnFire = n => wheel.Add(n, _now); // due "now": must wait for the next call
        wheel.Add(node, 5 * Ms);
        Assert.Equal(1, Advance(wheel, 5 * Ms));
        Assert.True(node.IsArmed);
        Assert.Equal(1, Advance(wheel, 5 * Ms));
        Assert.Equal(1, Advance(wheel, 5 * Ms + 1));
        Assert.Equal(3, _fired.Count);
    }

    [Theory]
    [InlineData(64 * Ms)]               // the first level-1 distance
    [InlineData(4096 * Ms + 1)]         // level 2
    [InlineData(3600 * Second + 17)]    // an hour: level 3
    [InlineData(10 * Day + 5)]          // level 4
    [InlineData(300 * Day + 5)]         // level 5
    [InlineData(3 * 365 * Day + 11)]    // beyond the wheel's 2.2 years: waits at the top and cascades again
    public void FarFutureTimer_CascadesDown_AndFiresAtItsDueTime_NotBefore(long due)
    {
        var wheel = NewWheel();
        var node = new Node(this, 1);
        var near = new Node(this, 2);
        wheel.Add(node, due);
        wheel.Add(near, 3 * Ms);
        // Uneven steps up to just before the due time, crossing many cascade points (and big idle gaps).
        var random = new Random(3);
        long now = 0;
        while (now < due - 1)
        {
            now = Math.Min(due - 1, now + (random.Next(4) == 0 ? random.NextInt64(1, due / 3 + 2) : random.NextInt64(1, 200 * Ms)));
            Advance(wheel, now);
        }
        Assert.Equal(new[] { near }, _fired);
        Assert.True(node.IsArmed);
        Assert.True(wheel.TryGetNextDeadline(out long deadline));
        Assert.True(deadline <= due);
        Assert.Equal(1, Advance(wheel, due));
        Assert.Equal(new[] { near, node }, _fired);
        Assert.True(wheel.Cascaded <= 2 * TimerWheel.Levels, $"cascaded {wheel.Cascaded} times");
    }

    [Fact]
    public void ExtremeDueTimes_PastFiresAtOnce_MaxValueNever()
    {
        var wheel = NewWheel();
        var past = new Node(this, 1);
        var never = new Node(this, 2);
        wheel.Add(past, long.MinValue);
        wheel.Add(never, long.MaxValue);
        Assert.Equal(1, Advance(wheel, 0));
        Assert.Equal(new[] { past }, _fired);
        Assert.Equal(0, Advance(wheel, 100 * 365 * Day));
        Assert.True(never.IsArmed);
    }

    [Fact]
    public void Advance_OverYearsOfIdleTime_IsCheap()
    {
        // One tick at a time this would be 10^11 iterations; the occupancy bitmaps make it a handful per level.
        var wheel = NewWheel();
        var node = new Node(this, 1);
        wheel.Add(node, 700 * Day);
        Advance(wheel, 699 * Day);
        Assert.Empty(_fired);
        Advance(wheel, 800 * Day);
        Assert.Equal(new[] { node }, _fired);
    }

    [Fact]
    public void Advance_Budget_FiresAtMostBudget_TheRestOnTheNextCall()
    {
        var wheel = NewWheel();
        var nodes = Enumerable.Range(0, 10).Select(i => new Node(this, i)).ToArray();
        for (int i = 0; i < nodes.Length; i++) wheel.Add(nodes[i], i * 10 * Ms);
        Assert.Equal(3, Advance(wheel, Second, budget: 3));
        Assert.Equal(3, Advance(wheel, Second, budget: 3));
        Assert.True(wheel.TryGetNextDeadline(out long deadline));
        Assert.True(deadline <= nodes[6].Due);
        Assert.Equal(4, Advance(wheel, Second, budget: 100));
        Assert.Equal(nodes, _fired);
    }

    [Fact]
    public void Fire_Throwing_PropagatesAndLeavesTheOtherExpiredNodesForTheNextAdvance()
    {
        var wheel = NewWheel();
        var thrower = new Node(this, 1) { OnFire = _ => throw new InvalidOperationException("boom") };
        var others = Enumerable.Range(2, 5).Select(i => new Node(this, i)).ToArray();
        wheel.Add(thrower, 1 * Ms);
        foreach (var n in others) wheel.Add(n, 1 * Ms + n.Id);
        Assert.Throws<InvalidOperationException>(() => Advance(wheel, 2 * Ms));
        Assert.Equal(5, wheel.Count);
        Assert.True(wheel.TryGetNextDeadline(out long deadline) && deadline <= 2 * Ms);
        Assert.Equal(5, Advance(wheel, 2 * Ms));
        Assert.Equal(new Node[] { thrower }.Concat(others), _fired);
    }

    [Fact]
    public void Add_NodeArmedOnAnotherWheel_Throws()
    {
        var a = NewWheel();
        var b = NewWheel();
        var node = new Node(this, 1);
        a.Add(node, 5 * Ms);
        Assert.Throws<InvalidOperationException>(() => b.Add(node, 6 * Ms));
        Assert.Throws<InvalidOperationException>(() => b.Remove(node));
        Assert.True(a.Remove(node));
        b.Add(node, 6 * Ms); // idle again: free to move
        Assert.Equal(1, b.Count);
    }

    [Fact]
    public void TryGetNextDeadline_IsNeverLaterThanTheEarliestDue_AndParkingOnItReachesEachTimerInFewWakes()
    {
        var wheel = NewWheel();
        var random = new Random(11);
        var nodes = new List<Node>();
        for (int i = 0; i < 300; i++)
        {
            var n = new Node(this, i);
            nodes.Add(n);
            wheel.Add(n, random.NextInt64(1, 30 * Day));
        }
        int wakes = 0;
        long now = 0;
        while (wheel.TryGetNextDeadline(out long deadline))
        {
            long earliest = nodes.Where(n => n.IsArmed).Min(n => n.Due);
            Assert.True(deadline <= earliest, $"deadline {deadline} after the earliest due {earliest}");
            Assert.True(deadline > now, $"deadline {deadline} not after {now}, when everything due by then has fired");
            now = Math.Max(now, deadline); // a CPU that sleeps exactly until the deadline
            Advance(wheel, now);
            wakes++;
        }
        Assert.Equal(300, _fired.Count);
        // Each timer costs at most one wake per level it cascades through, plus its own.
        Assert.True(wakes <= 300 * (TimerWheel.Levels + 1), $"{wakes} wakes");
    }

    [Fact]
    public void ReArm_100kTimes_AllocatesNothing()
    {
        var wheel = NewWheel();
        var nodes = Enumerable.Range(0, 64).Select(_ => new CountingNode()).ToArray();
        long now = 0;
        Run(20_000); // warm up: JIT tiers
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run(100_000);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.True(nodes.Sum(n => n.Count) > 0);

        void Run(int rearms)
        {
            for (int i = 0; i < rearms; i++)
            {
                // Spread over levels 0-2 (up to ~16 s), re-arming armed and fired nodes alike; cancel some.
                CountingNode node = nodes[i & 63];
                wheel.Add(node, now + (i * 7919L % 16_000) * Ms + i % 1000);
                if (i % 5 == 0) wheel.Remove(nodes[(i * 31) & 63]);
                if (i % 50 == 0)
                {
                    now += 3 * Ms;
                    wheel.Advance(now, int.MaxValue);
                }
            }
        }
    }

    /// <summary>
    /// A model check: random arming, re-arming (also from inside Fire), cancelling and advancing, with small steps and
    /// huge jumps, against a plain dictionary of due times. After each Advance(now): exactly the nodes due at or before
    /// now have fired, in due order, and nothing early.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void RandomOperations_MatchASortedModel(int seed)
    {
        var random = new Random(seed);
        var wheel = new TimerWheel(startTimestamp: 5 * Ms + 1, resolution: Ms);
        long now = 5 * Ms + 1;
        var model = new Dictionary<Node, long>();
        var nodes = new Node[200];
        for (int i = 0; i < nodes.Length; i++)
        {
            var n = new Node(this, i);
            n.OnFire = fired =>
            {
                Assert.True(model.Remove(fired), $"node {fired.Id} fired but was not armed in the model");
                if (random.Next(4) == 0)
                {
                    long due = _now + random.NextInt64(1, 500 * Ms); // strictly after now: the model's check stays exact
                    wheel.Add(fired, due);
                    model[fired] = due;
                }
            };
            nodes[i] = n;
        }

        long RandomDelay() => random.Next(10) switch
        {
            0 => -random.NextInt64(0, 10 * Ms),        // in the past
            < 5 => random.NextInt64(0, 5 * Ms),         // within level 0
            < 8 => random.NextInt64(0, 10 * Second),
            < 9 => random.NextInt64(0, 30 * Day),
            _ => random.NextInt64(0, 4 * 365 * Day),    // beyond the wheel's span
        };

        for (int step = 0; step < 20_000; step++)
        {
            int op = random.Next(10);
            Node node = nodes[random.Next(nodes.Length)];
            if (op < 4)
            {
                long due = now + RandomDelay();
                wheel.Add(node, due);
                model[node] = due;
            }
            else if (op < 5)
            {
                Assert.Equal(model.Remove(node), wheel.Remove(node));
            }
            else
            {
                if (wheel.TryGetNextDeadline(out long deadline))
                    Assert.True(deadline <= model.Values.Min(), $"step {step}: next deadline {deadline} after the earliest due {model.Values.Min()}");
                else
                    Assert.Empty(model);
                now += random.Next(20) switch
                {
                    0 => random.NextInt64(0, 60 * Day),
                    < 4 => random.NextInt64(0, 20 * Second),
                    _ => random.NextInt64(0, 3 * Ms),
                };
                _firedDues.Clear();
                Advance(wheel, now);
                for (int i = 1; i < _firedDues.Count; i++)
                    Assert.True(_firedDues[i - 1] <= _firedDues[i], $"step {step}: fired out of due order");
                foreach (var (n, due) in model)
                    Assert.True(due > now, $"step {step}: node {n.Id} due {due} still armed at {now}");
            }
            Assert.Equal(model.Count, wheel.Count);
            foreach (var n in nodes) Assert.Equal(model.ContainsKey(n), n.IsArmed);
        }
    }
}
