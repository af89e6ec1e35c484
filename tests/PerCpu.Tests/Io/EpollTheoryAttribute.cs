using PerCpu.Platform;

namespace PerCpu.Tests.Io;

/// <summary>A fact that is skipped, with the reason in the test output, where epoll is not available.</summary>
public sealed class EpollTheoryAttribute : TheoryAttribute
{
    public EpollTheoryAttribute()
    {
        if (!Epoll.IsSupported) Skip = "Needs Linux epoll and eventfd (x86-64 or arm64): Epoll.IsSupported is false here.";
    }
}
