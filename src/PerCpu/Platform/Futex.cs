using System.Runtime.InteropServices;

namespace PerCpu.Platform;

/// <summary>Linux futex(2) wait/wake on a 32-bit word in native memory: the cheapest way to park a thread here.</summary>
internal static unsafe partial class Futex
{
    private const int SysFutex = 202; // x86-64
    private const int FutexWaitPrivate = 0 | 128;
    private const int FutexWakePrivate = 1 | 128;

    /// <summary>True where the raw syscall is known (Linux x86-64); elsewhere the parker uses a managed event.</summary>
    internal static readonly bool IsSupported = OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64 && Probe();

    /// <summary>Sleeps while <paramref name="address"/> holds <paramref name="expected"/>, at most <paramref name="timeoutNs"/> (negative: forever).</summary>
    internal static void Wait(int* address, int expected, long timeoutNs)
    {
        if (timeoutNs < 0)
        {
            Syscall(SysFutex, (nint)address, FutexWaitPrivate, expected, 0, 0, 0);
            return;
        }
        // Relative timeout for FUTEX_WAIT.
        long* ts = stackalloc long[2];
        ts[0] = timeoutNs / 1_000_000_000;
        ts[1] = timeoutNs % 1_000_000_000;
        Syscall(SysFutex, (nint)address, FutexWaitPrivate, expected, (nint)ts, 0, 0);
    }

    /// <summary>Wakes one thread sleeping on <paramref name="address"/>.</summary>
    internal static void WakeOne(int* address) => Syscall(SysFutex, (nint)address, FutexWakePrivate, 1, 0, 0, 0);

    private static bool Probe()
    {
        try
        {
            int word = 0;
            // A wake with nobody waiting returns 0; a missing syscall would throw or return -1.
            return Syscall(SysFutex, (nint)(&word), FutexWakePrivate, 1, 0, 0, 0) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "syscall")]
    private static partial nint Syscall(nint number, nint a1, nint a2, nint a3, nint a4, nint a5, nint a6);
}
