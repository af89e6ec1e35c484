using System.Runtime.InteropServices;

namespace PerCpu.Benchmarks.Harness;

/// <summary>
/// CPU time and voluntary context switches of this process and of its reaped children (the native reference runs
/// as a child), from <c>getrusage</c>: microsecond resolution, unlike the 10 ms ticks of /proc.
/// </summary>
internal static partial class ProcessUsage
{
    private const int RusageSelf = 0;
    private const int RusageChildren = -1;

    /// <summary>Linux x86-64 <c>struct rusage</c>: two timevals, then 14 longs (ru_nvcsw is the 13th).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct RUsage
    {
        public long UtimeSec, UtimeUsec, StimeSec, StimeUsec;
        public long MaxRss, IxRss, IdRss, IsRss, MinFlt, MajFlt, NSwap, InBlock, OuBlock, MsgSnd, MsgRcv, NSignals, NvCsw, NivCsw;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrusage(int who, out RUsage usage);

    /// <summary>One reading: CPU seconds (user + system) and voluntary context switches (= times a thread slept).</summary>
    public readonly record struct Reading(double CpuSeconds, long Sleeps)
    {
        public static Reading operator -(Reading a, Reading b) => new(a.CpuSeconds - b.CpuSeconds, a.Sleeps - b.Sleeps);
    }

    /// <summary>This process, all threads (exited ones included).</summary>
    public static Reading Self() => Read(RusageSelf);

    /// <summary>This process plus its children that have been waited for.</summary>
    public static Reading SelfAndChildren()
    {
        Reading s = Read(RusageSelf), c = Read(RusageChildren);
        return new Reading(s.CpuSeconds + c.CpuSeconds, s.Sleeps + c.Sleeps);
    }

    private static Reading Read(int who)
    {
        if (getrusage(who, out RUsage u) != 0) return default;   // not Linux-like: the notes show zeros
        double cpu = u.UtimeSec + u.StimeSec + (u.UtimeUsec + u.StimeUsec) * 1e-6;
        return new Reading(cpu, u.NvCsw);
    }
}
