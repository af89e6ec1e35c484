namespace PerCpu.Io;

/// <summary>
/// Readiness of a file descriptor, as a <see cref="Reactor"/> reports it to an <see cref="IReadinessHandler"/> and as a
/// registration asks for it. The values are epoll's (<c>EPOLLIN</c>, …), so no translation is paid per event.
/// </summary>
[Flags]
internal enum IoEvents : uint
{
    None = 0,

    /// <summary>Data to read, or a connection to accept, or EOF (<c>EPOLLIN</c>).</summary>
    Readable = Platform.Epoll.In,

    /// <summary>Urgent/priority data (<c>EPOLLPRI</c>).</summary>
    Priority = Platform.Epoll.Pri,

    /// <summary>Room to write (<c>EPOLLOUT</c>).</summary>
    Writable = Platform.Epoll.Out,

    /// <summary>An error is pending on the descriptor (<c>EPOLLERR</c>; always reported, need not be asked for).</summary>
    Error = Platform.Epoll.Err,

    /// <summary>Both directions are shut (<c>EPOLLHUP</c>; always reported, need not be asked for).</summary>
    Hangup = Platform.Epoll.Hup,

    /// <summary>The peer shut its writing half: half-close (<c>EPOLLRDHUP</c>).</summary>
    ReadHangup = Platform.Epoll.RdHup,
}
