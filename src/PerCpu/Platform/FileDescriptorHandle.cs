using System.Runtime.InteropServices;

namespace PerCpu.Platform;

/// <summary>
/// A file descriptor this library created (an epoll set, an eventfd), closed once: by <see cref="SafeHandle.Dispose()"/>
/// or, if the owner forgot, by the finalizer. Its reference count lets another thread use the descriptor (the eventfd
/// write of a wake) without racing with its close: a close during such a use is deferred until the use ends, so the
/// number can never be reused under a writer.
/// </summary>
internal sealed class FileDescriptorHandle : SafeHandle
{
    internal FileDescriptorHandle(int fd) : base(invalidHandleValue: -1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => handle == -1;

    /// <summary>The descriptor number (valid until the handle is closed).</summary>
    internal int Fd => (int)handle;

    protected override bool ReleaseHandle() => Epoll.CloseFd((int)handle) == 0;
}
