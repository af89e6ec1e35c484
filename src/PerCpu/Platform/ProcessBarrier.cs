using System.Runtime.InteropServices;

namespace PerCpu.Platform;

/// <summary>
/// Whether <see cref="Interlocked.MemoryBarrierProcessWide"/> really makes every other core of the process execute a
/// full fence, which the asymmetric park fence (see <c>Cpu.Idle</c>) relies on: a sender publishes and reads the
/// target's mask and state with no fence of its own, and the parking CPU's process-wide barrier stands in for it.
/// <para>
/// The argument. .NET implements the barrier with the OS's FlushProcessWriteBuffers:
/// <list type="bullet">
/// <item>Windows: <c>FlushProcessWriteBuffers</c> interrupts every processor running a thread of the process (an IPI on
/// x64 and ARM64 alike): reliable.</item>
/// <item>Linux with <c>membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)</c>: the kernel sends an IPI to every core running a
/// thread of the process and each executes <c>smp_mb()</c>: reliable. The .NET runtime queries the command at start and,
/// where it is available, registers for it (<c>MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED</c>); an unregistered
/// process gets <c>EPERM</c>. So we ask the kernel the same question (<c>MEMBARRIER_CMD_QUERY</c>) and then issue the
/// command once: success proves it is supported and registered, i.e. what .NET uses.</item>
/// <item>Linux without it (kernels before 4.14, seccomp filters that deny the call), and other Unix systems: .NET falls
/// back to changing the protection of a page that every thread has touched. On x86-64 the kernel must shoot down the
/// other cores' TLB entries with an IPI, whose handler is serializing: reliable. On ARM64 the TLB is invalidated by
/// broadcast instructions (<c>TLBI ... IS</c>) that interrupt no core and order none of its loads and stores: not
/// reliable, and a sender's publication may then stay invisible to the parking CPU's re-check while the sender reads a
/// stale "awake" state, so the wake is lost until the tick.</item>
/// </list>
/// Where <see cref="UseAsymmetricFence"/> is false, senders add a full fence between publishing and reading the
/// target's state (the symmetric Dekker protocol), which holds on any hardware.
/// </para>
/// </summary>
internal static partial class ProcessBarrier
{
    /// <summary>membarrier(2)'s commands (include/uapi/linux/membarrier.h).</summary>
    internal const int MembarrierCmdQuery = 0, MembarrierCmdPrivateExpedited = 1 << 3, MembarrierCmdRegisterPrivateExpedited = 1 << 4;

    /// <summary>membarrier(2)'s number: 324 on x86-64, 283 on arm64; -1 elsewhere.</summary>
    private static readonly nint SysMembarrier = Futex.SyscallNumber(x64: 324, arm64: 283);

    /// <summary>Computed once, on first use (the type's static constructor); immutable after.</summary>
    private static readonly (bool Reliable, string Reason) s_detected = Detect();

    /// <summary>
    /// Test hook: true makes <see cref="UseAsymmetricFence"/> false, so that the symmetric path can be tested on hardware
    /// where the asymmetric one is reliable. Written by tests, read by senders and parking CPUs (volatile: a change is
    /// seen promptly; set it before starting the runtime under test, since a send in flight may use either protocol).
    /// </summary>
    internal static bool ForceSymmetric
    {
        get => s_forceSymmetric;
        set => s_forceSymmetric = value;
    }

    private static volatile bool s_forceSymmetric;

    /// <summary>True if <see cref="Interlocked.MemoryBarrierProcessWide"/> interrupts every other core of the process (see the type's remarks).</summary>
    internal static bool IsReliable => s_detected.Reliable;

    /// <summary>Why <see cref="IsReliable"/> is what it is, for logs and test output.</summary>
    internal static string Reason => s_detected.Reason;

    /// <summary>True if senders may skip their fence and rely on the parking CPU's process-wide barrier.</summary>
    internal static bool UseAsymmetricFence => IsReliable && !s_forceSymmetric;

    /// <summary>
    /// Linux: <c>membarrier(MEMBARRIER_CMD_QUERY)</c>, the bit mask of supported commands, or -1 with the errno where the
    /// call fails (ENOSYS: kernel without it, or a seccomp filter) or the architecture's number is unknown.
    /// </summary>
    internal static int QueryMembarrier(out int errno)
    {
        errno = 0;
        if (!OperatingSystem.IsLinux() || SysMembarrier < 0) return -1;
        try
        {
            int result = (int)Syscall(SysMembarrier, MembarrierCmdQuery, 0, 0);
            if (result < 0) errno = Marshal.GetLastPInvokeError();
            return result;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return -1;
        }
    }

    private static (bool, string) Detect()
    {
        Architecture arch = RuntimeInformation.ProcessArchitecture;
        bool x86 = arch is Architecture.X64 or Architecture.X86;
        if (OperatingSystem.IsWindows()) return (true, "Windows: FlushProcessWriteBuffers interrupts every processor running the process.");
        if (OperatingSystem.IsLinux())
        {
            int supported = QueryMembarrier(out int errno);
            if (supported >= 0 && (supported & MembarrierCmdPrivateExpedited) != 0)
            {
                // Issue the command once: it fails with EPERM unless the process registered, which .NET does at start
                // when it uses membarrier for the process-wide barrier.
                int result = (int)Syscall(SysMembarrier, MembarrierCmdPrivateExpedited, 0, 0);
                if (result == 0) return (true, "Linux: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) is supported and registered.");
                errno = Marshal.GetLastPInvokeError();
                return (x86, $"Linux: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) is supported but failed (errno {errno}: not registered), so .NET uses its page-protection fallback, " +
                    (x86 ? "which interrupts every core on x86 (TLB shoot-down IPIs)." : $"which interrupts no other core on {arch}."));
            }
            string why = supported < 0 ? $"membarrier is unavailable (errno {errno})" : $"membarrier lacks MEMBARRIER_CMD_PRIVATE_EXPEDITED (commands 0x{supported:x})";
            return (x86, $"Linux: {why}, so .NET uses its page-protection fallback, " +
                (x86 ? "which interrupts every core on x86 (TLB shoot-down IPIs)." : $"which interrupts no other core on {arch}."));
        }
        return (x86, x86
            ? $"{RuntimeInformation.OSDescription} on {arch}: TLB shoot-downs interrupt every core."
            : $"{RuntimeInformation.OSDescription} on {arch}: no evidence that the process-wide barrier interrupts other cores; assumed unreliable.");
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial nint Syscall(nint number, nint a1, nint a2, nint a3);
}
