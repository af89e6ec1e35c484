using Xunit.Abstractions;
using System.Runtime.InteropServices;
using PerCpu.Platform;

namespace PerCpu.Tests.Platform;

/// <summary>Issue 11 item 10: detection of a process-wide barrier that really interrupts the other cores; the futex on arm64.</summary>
public sealed class ProcessBarrierTests(ITestOutputHelper output)
{
    private static bool LinuxWithKnownSyscalls => OperatingSystem.IsLinux()
        && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    [Fact]
    public void MembarrierQuery_OnLinux_ReturnsTheSupportedCommands()
    {
        if (!LinuxWithKnownSyscalls) return;
        int commands = ProcessBarrier.QueryMembarrier(out int errno);
        output.WriteLine($"membarrier commands 0x{commands:x} (errno {errno}); {ProcessBarrier.Reason}");
        Assert.True(commands >= 0, $"membarrier(MEMBARRIER_CMD_QUERY) failed with errno {errno}");
        // Where the kernel offers the expedited command, the .NET runtime registered for it at start: detection says reliable.
        if ((commands & ProcessBarrier.MembarrierCmdPrivateExpedited) != 0
            && (commands & ProcessBarrier.MembarrierCmdRegisterPrivateExpedited) != 0)
            Assert.True(ProcessBarrier.IsReliable, ProcessBarrier.Reason);
    }

    [Fact]
    public void X64Linux_IsReliable()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64) return;
        // Either membarrier or the page-protection fallback, whose TLB shoot-downs interrupt every core on x86.
        Assert.True(ProcessBarrier.IsReliable, ProcessBarrier.Reason);
        output.WriteLine(ProcessBarrier.Reason);
    }

    [Fact]
    public void Windows_IsReliable()
    {
        if (!OperatingSystem.IsWindows()) return;
        Assert.True(ProcessBarrier.IsReliable, ProcessBarrier.Reason);
    }

    [Fact]
    public void Futex_UsesTheArchitecturesSyscallNumber_AndIsSupportedOnLinux()
    {
        nint expected = RuntimeInformation.ProcessArchitecture switch { Architecture.X64 => 202, Architecture.Arm64 => 98, _ => -1 };
        Assert.Equal(expected, Futex.SyscallNumber(x64: 202, arm64: 98));
        if (LinuxWithKnownSyscalls) Assert.True(Futex.IsSupported);
    }
}

/// <summary>Flips the process-wide test hook: alone (the Stress collection runs by itself), so no other test's runtime sees it change.</summary>
[Collection("Stress")]
public sealed class ProcessBarrierHookTests
{
    [Fact]
    public void ForceSymmetric_TurnsTheAsymmetricFenceOff_AndBackOn()
    {
        try
        {
            ProcessBarrier.ForceSymmetric = true;
            Assert.False(ProcessBarrier.UseAsymmetricFence);
        }
        finally
        {
            ProcessBarrier.ForceSymmetric = false;
        }
        Assert.Equal(ProcessBarrier.IsReliable, ProcessBarrier.UseAsymmetricFence);
    }
}
