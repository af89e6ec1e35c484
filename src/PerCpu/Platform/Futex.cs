using System.Runtime.InteropServices;

namespace PerCpu.Platform;

/// <summary>Linux futex(2) wait/wake on a 32-bit word in native memory: the cheapest way to park a thread here.</summary>
internal static unsafe partial class Futex
{
    /// <summary>futex(2)'s number: 202 on x86-64, 98 on arm64 (the generic table of asm-generic/unistd.h); -1 elsewhere.</summary>
    private static readonly nint SysFutex = SyscallNumber(x64: 202, arm64: 98);
    private const int FutexWaitPrivate = 0 | 128;
    private const int FutexWakePrivate = 1 | 128;

    /// <summary>True where the raw syscall is known (Linux x86-64 and arm64) and answers; elsewhere the parker uses a managed event.</summary>
    internal static readonly bool IsSupported = OperatingSystem.IsLinux() && SysFutex >= 0 && Probe();

    /// <summary>A Linux syscall's number for the running architecture, or -1 where this code does not know it.</summary>
    internal static nint SyscallNumber(int x64, int arm64) => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => x64,
        Architecture.Arm64 => arm64,
        _ => -1,
    };

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
