
namespace PerCpu.Tests.Timers;

/// <summary>
/// Tickless idle (issue 12): a parked CPU with no timer sleeps until woken; passive messages still run within a tick
/// through a deferred wake, without the sender waking the target.
/// </summary>
[Collection("Stress")]
public sealed class TicklessTests
{
    private static void Configure(CpuRuntimeOptions o)
    {
        o.IdleSpin = TimeSpan.Zero;
        o.TickInterval = TimeSpan.FromMilliseconds(1); // the old periodic tick would make hundreds of passes below
        o.StallThreshold = TimeSpan.Zero; // the watchdog's timer is not what is measured here
    }

    private static Task UntilAsleep(Cpu cpu) => Progress.Until(() => cpu.IsAsleep, () => 0, $"CPU {cpu.Id} to sleep");

    [Fact]
    public async Task ParkedCpu_WithNoTimer_DoesNotWake()
    {
        await using var runtime = TestUtil.Start(2, Configure);
        await UntilAsleep(runtime[0]);
        await UntilAsleep(runtime[1]);
        long parks0 = Volatile.Read(ref runtime[0].Counters.Parks), parks1 = Volatile.Read(ref runtime[1].Counters.Parks);
        long passes0 = Volatile.Read(ref runtime[0].Own.PassStamp), passes1 = Volatile.Read(ref runtime[1].Own.PassStamp);
        // A stretch of idleness (a measurement window, not a synchronization): with a 1 ms tick this was 300 passes each.
        Thread.Sleep(300);
        Assert.Equal(parks0, Volatile.Read(ref runtime[0].Counters.Parks));
        Assert.Equal(parks1, Volatile.Read(ref runtime[1].Counters.Parks));
        Assert.Equal(passes0, Volatile.Read(ref runtime[0].Own.PassStamp));
        Assert.Equal(passes1, Volatile.Read(ref runtime[1].Own.PassStamp));
        Assert.True(runtime[1].IsAsleep);
    }

    [Fact]
    public async Task ParkedCpu_WakesForItsTimer_WithoutASender()
    {
        await using var runtime = TestUtil.Start(2, Configure);
        var fired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var timer = new CpuTimer(runtime[1], static s => ((TaskCompletionSource)s!).SetResult(), fired);
        await runtime[1].InvokeAsync(() => timer.Start(TimeSpan.FromMilliseconds(30))).AsTask().WithHangDetector();
        runtime.ResetStatistics();
        await fired.Task.WithHangDetector();
        Assert.Equal(0, runtime.GetStatistics().WakesSent); // the park's own deadline ended it
    }

    [Fact]
    public async Task PassiveSend_FromACpu_ToAParkedCpu_RunsWithoutTheSenderWakingIt()
    {
        await using var runtime = TestUtil.Start(2, o => { Configure(o); o.TickInterval = TimeSpan.FromMilliseconds(20); });
        using var ran = new ManualResetEventSlim();
        await UntilAsleep(runtime[1]);
        runtime.ResetStatistics();
        await runtime[0].InvokeAsync(() => { runtime[1].SendPassive(static (o, _) => ((ManualResetEventSlim)o!).Set(), ran); }).AsTask().WithHangDetector();
        ran.WaitOrFail("the passive message");
        Assert.Equal(0, runtime[0].GetStatistics().WakesSent);
        Assert.Equal(1, runtime[0].GetStatistics().Passive);
    }

    [Fact]
    public async Task PassiveSend_FromOutside_ToAParkedCpu_Runs()
    {
        await using var runtime = TestUtil.Start(2, o => { Configure(o); o.TickInterval = TimeSpan.FromMilliseconds(20); });
        using var ran = new ManualResetEventSlim();
        await UntilAsleep(runtime[1]);
        runtime[1].SendPassive(static (o, _) => ((ManualResetEventSlim)o!).Set(), ran);
        ran.WaitOrFail("the passive message from outside");
    }

    /// <summary>Many passive messages to parked CPUs, from CPUs and from outside, with random gaps: none is ever stranded.</summary>
    [Fact]
    public async Task PassiveSends_ToParkingCpus_AreNeverStranded()
    {
        await using var runtime = TestUtil.Start(3, o => { Configure(o); o.TickInterval = TimeSpan.FromMilliseconds(2); });
        var box = new Counter();
        var random = new Random(7);
        for (int i = 0; i < 300; i++)
        {
            int spin = random.Next(0, 5000);
            if ((i & 1) == 0)
            {
                Thread.SpinWait(spin);
                runtime[1 + ((i >> 1) & 1)].SendPassive(static (o, _) => Interlocked.Increment(ref ((Counter)o!).Value), box);
            }
            else
            {
                runtime[0].Send(static (o, spin) =>
                {
                    Thread.SpinWait((int)spin);
                    Cpu.Current!.Runtime[2].SendPassive(static (b, _) => Interlocked.Increment(ref ((Counter)b!).Value), o);
                }, box, spin);
            }
            long expected = i + 1;
            await Progress.Until(() => Volatile.Read(ref box.Value) >= expected, () => Volatile.Read(ref box.Value), $"passive message {i}");
        }
        Assert.Equal(300, Volatile.Read(ref box.Value));
    }

    private sealed class Counter
    {
        public long Value;
    }
}
