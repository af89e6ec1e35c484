using System.Runtime.InteropServices;

namespace PerCpu.Benchmarks.Harness;

/// <summary>Pins the calling thread to one CPU (Linux <c>sched_setaffinity</c>; CoreCLR threads are 1:1 pthreads).</summary>
internal static partial class Affinity
{
    [LibraryImport("libc", SetLastError = true)]
    private static partial int sched_setaffinity(int pid, nint cpusetsize, ref ulong mask);

    /// <summary>Pins the current thread to <paramref name="cpu"/>, or throws: a "pinned" row must never run unpinned silently.</summary>
    public static void PinCurrentThread(int cpu)
    {
        if (cpu < 0 || cpu >= 64 || cpu >= Environment.ProcessorCount)
            throw new InvalidOperationException($"cannot pin to CPU {cpu}: this machine has {Environment.ProcessorCount} CPUs (the suite needs 2)");
        ulong mask = 1UL << cpu;
        if (sched_setaffinity(0, sizeof(ulong), ref mask) != 0)   // pid 0 = the calling thread
            throw new InvalidOperationException($"sched_setaffinity(CPU {cpu}) failed: errno {Marshal.GetLastPInvokeError()}");
    }
}
