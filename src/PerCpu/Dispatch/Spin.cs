using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace PerCpu.Dispatch;

/// <summary>One spin-loop pause: a single PAUSE (x86) or YIELD (Arm) — cheaper and more predictable than <see cref="Thread.SpinWait(int)"/>, whose normalized iteration can be tens of nanoseconds.</summary>
internal static class Spin
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Pause()
    {
        if (X86Base.IsSupported) X86Base.Pause();
        else if (ArmBase.IsSupported) ArmBase.Yield();
        else Thread.SpinWait(1);
    }
}
