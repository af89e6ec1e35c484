using System.Runtime.InteropServices;

namespace PerCpu.Platform;

/// <summary>Thread-to-core pinning. Linux only; elsewhere every call reports that the thread runs unpinned.</summary>
internal static partial class Affinity
{
    /// <summary>The cores this process may run on, in ascending order (all of them where that cannot be asked).</summary>
    internal static int[] AllowedCores()
    {
        if (OperatingSystem.IsLinux())
        {
            Span<ulong> mask = stackalloc ulong[16]; // 1024 cores
            if (SchedGetAffinity(0, (nuint)(mask.Length * sizeof(ulong)), ref MemoryMarshal.GetReference(mask)) == 0)
            {
                var cores = new List<int>();
                for (int w = 0; w < mask.Length; w++)
                    for (int b = 0; b < 64; b++)
                        if ((mask[w] & (1UL << b)) != 0) cores.Add(w * 64 + b);
                if (cores.Count > 0) return cores.ToArray();
            }
        }
        var all = new int[Environment.ProcessorCount];
        for (int i = 0; i < all.Length; i++) all[i] = i;
        return all;
    }

    /// <summary>Pins the calling thread to one core. Returns false where the OS does not allow it (never throws).</summary>
    internal static bool TryPinCurrentThread(int core)
    {
        if (!OperatingSystem.IsLinux() || core < 0 || core >= 1024) return false;
        try
        {
            Span<ulong> mask = stackalloc ulong[16];
            mask.Clear();
            mask[core >> 6] = 1UL << (core & 63);
            // pid 0 = the calling thread: each CPU thread pins itself.
            return SchedSetAffinity(0, (nuint)(mask.Length * sizeof(ulong)), ref MemoryMarshal.GetReference(mask)) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    private static partial int SchedSetAffinity(int pid, nuint cpusetsize, ref ulong mask);

    [LibraryImport("libc", EntryPoint = "sched_getaffinity", SetLastError = true)]
    private static partial int SchedGetAffinity(int pid, nuint cpusetsize, ref ulong mask);
}
