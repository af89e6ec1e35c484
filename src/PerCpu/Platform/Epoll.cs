using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace PerCpu.Platform;

/// <summary>
/// Linux epoll(7) and eventfd(2) through <c>LibraryImport</c> (trim- and AOT-safe). Thin: the calls return what the
/// kernel returned (-1 on error) and the caller reads errno with <see cref="Marshal.GetLastPInvokeError"/>.
/// <para>
/// <c>struct epoll_event</c> is { u32 events; u64 data; } with <c>__attribute__((packed))</c> on x86-64 only
/// (<c>EPOLL_PACKED</c> in the kernel's uapi header): 12 bytes there, 16 bytes with the data at offset 8 on arm64. The
/// code never declares the struct: it reads and writes the two fields at <see cref="EventSize"/> and
/// <see cref="DataOffset"/>, which are chosen once for the process's architecture.
/// </para>
/// </summary>
internal static unsafe partial class Epoll
{
    // Flag values are the same on x86-64 and arm64 (asm-generic fcntl.h for arm64, identical octal values on x86).
    internal const int CloExec = 0x80000;        // O_CLOEXEC = EPOLL_CLOEXEC = EFD_CLOEXEC
    internal const int NonBlock = 0x800;         // O_NONBLOCK = EFD_NONBLOCK
    internal const int CtlAdd = 1, CtlDel = 2, CtlMod = 3;

    internal const uint In = 0x001, Pri = 0x002, Out = 0x004, Err = 0x008, Hup = 0x010, RdHup = 0x2000;
    internal const uint OneShot = 1u << 30, EdgeTriggered = 1u << 31;

    internal const int EIntr = 4, EAgain = 11, EBadF = 9, ENoEnt = 2, EExist = 17;

    /// <summary>Size of one <c>struct epoll_event</c> in the kernel's layout for this process (12 on x86-64, 16 on arm64).</summary>
    internal static readonly int EventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

    /// <summary>Offset of the <c>data</c> field (4 on x86-64 where the struct is packed, 8 on arm64).</summary>
    internal static readonly int DataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    /// <summary>
    /// True on Linux x86-64 and arm64 once an epoll set and an eventfd could actually be created (probed once: a seccomp
    /// profile or an emulator may refuse them). Elsewhere the struct layout is not known here, and callers must use
    /// another backend.
    /// </summary>
    internal static readonly bool IsSupported =
        OperatingSystem.IsLinux()
        && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64
        && Probe();

    /// <summary>Reads the <c>events</c> field of entry <paramref name="index"/> of a kernel-filled array.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint GetEvents(byte* events, int index) => Unsafe.ReadUnaligned<uint>(events + index * EventSize);

    /// <summary>Reads the <c>data</c> field of entry <paramref name="index"/> (unaligned on x86-64: the struct is packed).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong GetData(byte* events, int index) => Unsafe.ReadUnaligned<ulong>(events + index * EventSize + DataOffset);

    /// <summary>epoll_create1(EPOLL_CLOEXEC). Returns the fd or -1.</summary>
    internal static int Create() => EpollCreate1(CloExec);

    /// <summary>epoll_ctl with one event built in the kernel's layout. Returns 0 or -1.</summary>
    internal static int Control(int epfd, int op, int fd, uint events, ulong data)
    {
        byte* ev = stackalloc byte[16];
        Unsafe.WriteUnaligned(ev, events);
        Unsafe.WriteUnaligned(ev + 4, 0u); // padding on arm64; the data's low half on x86-64 (overwritten next)
        Unsafe.WriteUnaligned(ev + DataOffset, data);
        return EpollCtl(epfd, op, fd, op == CtlDel ? null : ev);
    }

    /// <summary>epoll_wait; <paramref name="timeoutMs"/> -1 waits forever, 0 polls. Returns the count or -1 (EINTR included).</summary>
    internal static int Wait(int epfd, byte* events, int maxEvents, int timeoutMs) => EpollWait(epfd, events, maxEvents, timeoutMs);

    /// <summary>eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC): a counter; readable while non-zero. Returns the fd or -1.</summary>
    internal static int CreateEventFd() => EventFd(0, NonBlock | CloExec);

    /// <summary>Adds <paramref name="value"/> to an eventfd's counter. Returns 8 or -1 (EAGAIN: the counter is at its maximum, i.e. already signalled).</summary>
    internal static nint WriteEventFd(int fd, ulong value) => Write(fd, &value, 8);

    /// <summary>Reads and resets an eventfd's counter. Returns 8, or -1 with EAGAIN when it was zero.</summary>
    internal static nint ReadEventFd(int fd, out ulong value)
    {
        ulong v = 0;
        nint r = Read(fd, &v, 8);
        value = v;
        return r;
    }

    /// <summary>close(2). Returns 0 or -1.</summary>
    internal static int CloseFd(int fd) => Close(fd);

    /// <summary>The text for an errno value, for exception messages.</summary>
    internal static string Describe(int errno) => $"errno {errno}: {Marshal.GetPInvokeErrorMessage(errno)}";

    private static bool Probe()
    {
        try
        {
            int ep = EpollCreate1(CloExec);
            if (ep < 0) return false;
            int ev = EventFd(0, NonBlock | CloExec);
            bool ok = ev >= 0 && Control(ep, CtlAdd, ev, In, 1) == 0;
            if (ev >= 0) Close(ev);
            Close(ep);
            return ok;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    private static partial int EpollCreate1(int flags);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    private static partial int EpollCtl(int epfd, int op, int fd, void* ev);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    private static partial int EpollWait(int epfd, void* events, int maxEvents, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFd(uint initval, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static partial nint Write(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
