namespace PerCpu.Io;

/// <summary>How a <see cref="Reactor"/> registration reports readiness.</summary>
internal enum ReactorTrigger
{
    /// <summary>
    /// Once per change (<c>EPOLLET</c>): the handler must read (or write) until <c>EAGAIN</c>/<c>WouldBlock</c>, or it
    /// hears nothing more until new data arrives. The default: one event per arrival, not one per pass while data waits.
    /// </summary>
    Edge,

    /// <summary>On every poll while the condition holds (epoll's default).</summary>
    Level,

    /// <summary>Once, then the registration is disarmed until <see cref="Reactor.Modify"/> re-arms it (<c>EPOLLONESHOT</c>).</summary>
    OneShot,
}
