using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace PerCpu.Platform;

/// <summary>
/// The data path of a CPU-owned socket: recv(2), send(2), sendmsg(2) and accept4(2) on the raw descriptor, through
/// <c>LibraryImport</c> (trim- and AOT-safe). .NET's <see cref="Socket"/> still creates, binds, connects and closes the
/// socket; its synchronous calls would cost a handle reference and a few checks per call, and its asynchronous ones
/// register the socket with .NET's own epoll thread, which is exactly the hop a CPU-owned socket exists to avoid.
/// Every call returns what the kernel returned (-1 on error; errno through <see cref="Marshal.GetLastPInvokeError"/>).
/// </summary>
internal static unsafe partial class SocketCalls
{
    internal const int MsgNoSignal = 0x4000;   // MSG_NOSIGNAL: a send to a closed peer fails with EPIPE, no SIGPIPE
    internal const int SockNonBlock = 0x800, SockCloExec = 0x80000;
    internal const int EAgain = 11, EIntr = 4, EInProgress = 115;

    /// <summary>iovecs one gathering send passes at most (IOV_MAX is 1024; more segments go in the next call).</summary>
    internal const int MaxIov = 64;

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    internal static partial nint Recv(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    internal static partial nint Send(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    internal static partial nint SendMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "accept4", SetLastError = true)]
    internal static partial int Accept4(int fd, void* address, void* addressLength, int flags);

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static partial int GetSockOpt(int fd, int level, int name, void* value, uint* length);

    /// <summary>SO_ERROR: the pending error of a socket (a non-blocking connect's outcome), as an errno (0: none), or -1 if the call failed.</summary>
    internal static int PendingError(int fd)
    {
        int value = 0;
        uint length = sizeof(int);
        return GetSockOpt(fd, 1 /* SOL_SOCKET */, 4 /* SO_ERROR */, &value, &length) == 0 ? value : -1;
    }

    /// <summary><c>struct iovec</c> (LP64: x86-64 and arm64).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    /// <summary><c>struct msghdr</c> (LP64: x86-64 and arm64).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    /// <summary>The <see cref="SocketError"/> .NET reports for a Linux errno (the common ones; others keep the errno in the message).</summary>
    internal static SocketException Error(int errno)
    {
        SocketError error = errno switch
        {
            104 => SocketError.ConnectionReset,       // ECONNRESET
            32 => SocketError.Shutdown,               // EPIPE (as .NET maps it: the peer closed, or we shut down sending)
            111 => SocketError.ConnectionRefused,     // ECONNREFUSED
            110 => SocketError.TimedOut,              // ETIMEDOUT
            103 => SocketError.ConnectionAborted,     // ECONNABORTED
            107 => SocketError.NotConnected,          // ENOTCONN
            113 => SocketError.HostUnreachable,       // EHOSTUNREACH
            101 => SocketError.NetworkUnreachable,    // ENETUNREACH
            100 => SocketError.NetworkDown,           // ENETDOWN
            9 => SocketError.OperationAborted,        // EBADF: closed under us
            24 or 23 => SocketError.TooManyOpenSockets, // EMFILE, ENFILE
            105 => SocketError.NoBufferSpaceAvailable, // ENOBUFS
            12 => SocketError.NoBufferSpaceAvailable, // ENOMEM
            _ => SocketError.SocketError,
        };
        return error == SocketError.SocketError
            ? new SocketException((int)error, $"Socket call failed ({Epoll.Describe(errno)}).")
            : new SocketException((int)error);
    }

    internal static bool IsSupported => Epoll.IsSupported;
}
