using PerCpu.Dispatch;
using PerCpu.Platform;

namespace PerCpu.Tests.Core;

/// <summary>Issue 11 item 6: time spans the runtime hands to .NET's waits must be ones those waits accept.</summary>
public sealed class OptionsTests
{
    private static readonly TimeSpan s_limit = TimeSpan.FromMilliseconds(int.MaxValue);

    private static CpuRuntimeOptions With(string name, TimeSpan value)
    {
        var o = new CpuRuntimeOptions { CpuCount = 1 };
        switch (name)
        {
            case nameof(CpuRuntimeOptions.TickInterval): o.TickInterval = value; break;
            case nameof(CpuRuntimeOptions.WaitWarning): o.WaitWarning = value; break;
            case nameof(CpuRuntimeOptions.WaitTimeout): o.WaitTimeout = value; break;
            case nameof(CpuRuntimeOptions.IdleSpin): o.IdleSpin = value; break;
            case nameof(CpuRuntimeOptions.StallThreshold): o.StallThreshold = value; break;
            default: throw new ArgumentException(name);
        }
        return o;
    }

    [Theory]
    [InlineData(nameof(CpuRuntimeOptions.TickInterval))]
    [InlineData(nameof(CpuRuntimeOptions.WaitWarning))]
    [InlineData(nameof(CpuRuntimeOptions.WaitTimeout))]
    [InlineData(nameof(CpuRuntimeOptions.IdleSpin))]
    [InlineData(nameof(CpuRuntimeOptions.StallThreshold))]
    public void TimeSpanOption_Of30Days_IsRejected_WithTheLimitAndTheFixInTheMessage(string name)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => CpuRuntime.Start(With(name, TimeSpan.FromDays(30))));
        Assert.Equal(name, e.ParamName);
        Assert.Contains("int.MaxValue milliseconds", e.Message);
        Assert.Contains("TimeSpan.FromMilliseconds(int.MaxValue)", e.Message);
    }

    [Theory]
    [InlineData(nameof(CpuRuntimeOptions.TickInterval))]
    [InlineData(nameof(CpuRuntimeOptions.WaitWarning))]
    [InlineData(nameof(CpuRuntimeOptions.WaitTimeout))]
    [InlineData(nameof(CpuRuntimeOptions.IdleSpin))]
    [InlineData(nameof(CpuRuntimeOptions.StallThreshold))]
    public async Task TimeSpanOption_OfIntMaxValueMilliseconds_IsAccepted(string name)
    {
        // A manual runtime validates the options like Start but has no threads (an IdleSpin of 24.8 days would spin).
        await using var runtime = CpuRuntime.StartManual(With(name, s_limit));
        Assert.Equal(1, runtime.CpuCount);
    }

    [Fact]
    public void TimeSpanOption_OneTickPastTheLimit_IsRejected()
        => Assert.Throws<ArgumentOutOfRangeException>(() => CpuRuntime.StartManual(With(nameof(CpuRuntimeOptions.TickInterval), s_limit + TimeSpan.FromTicks(1))));

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public async Task StallThreshold_ZeroOrInfinite_TurnsTheWatchdogOff_AndIsAccepted(int milliseconds)
    {
        await using var runtime = CpuRuntime.StartManual(With(nameof(CpuRuntimeOptions.StallThreshold), TimeSpan.FromMilliseconds(milliseconds)));
        Assert.False(runtime.Internals.Options.StallWatchdogEnabled);
    }

    [Fact]
    public void StallThreshold_Negative_IsRejected_SayingHowToTurnItOff()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => CpuRuntime.StartManual(With(nameof(CpuRuntimeOptions.StallThreshold), TimeSpan.FromMilliseconds(-5))));
        Assert.Contains("Timeout.InfiniteTimeSpan", e.Message);
    }

    /// <summary>
    /// Why the limit: without a futex (anything but Linux), a parked CPU sleeps in ManualResetEventSlim.Wait(TickInterval),
    /// which throws past int.MaxValue ms; before the validation a CPU thread died there on its first park.
    /// </summary>
    [Fact]
    public void ManagedParker_ThrowsPastTheLimit_WhichIsWhyValidationRejectsIt()
    {
        var parker = new Parker(useFutex: false);
        Assert.Throws<ArgumentOutOfRangeException>(() => parker.Park(TimeSpan.FromDays(30)));
    }

    [Fact]
    public void ManagedParker_AtTheLimit_ParksUntilUnparked()
        => ParkThenUnpark(new Parker(useFutex: false), s_limit);

    /// <summary>On the futex path (Linux) a 30-day tick was a valid relative timespec: the CPU slept and woke normally.</summary>
    [Fact]
    public void FutexParker_At30Days_ParksUntilUnparked()
    {
        if (!Futex.IsSupported) return;
        ParkThenUnpark(new Parker(useFutex: true), TimeSpan.FromDays(30));
    }

    /// <summary>Parks on a thread with <paramref name="timeout"/>, unparks it: Park returns whichever comes first (a permit or the wake).</summary>
    private static void ParkThenUnpark(Parker parker, TimeSpan timeout)
    {
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try { parker.Park(timeout); }
            catch (Exception e) { error = e; }
        });
        thread.Start();
        parker.Unpark();
        Assert.True(thread.Join(TestUtil.Hang), "Park did not return after Unpark");
        Assert.Null(error);
    }
}
