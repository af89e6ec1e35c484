namespace PerCpu.Io;

/// <summary>
/// Receives readiness for one registered descriptor: the "hardware interrupt" of the I/O layer. Called on the reactor's
/// owner (the CPU thread) from <see cref="Reactor.Poll"/> or <see cref="Reactor.Park"/>. Like an interrupt handler it
/// should do the minimum (note the readiness, schedule the connection's work at its soft-interrupt level) and return.
/// An exception propagates out of <c>Poll</c>/<c>Park</c>; the events of the same batch not yet dispatched are kept and
/// dispatched by the next call, so none is lost.
/// </summary>
internal interface IReadinessHandler
{
    /// <summary>The descriptor registered with <paramref name="registration"/> is ready for <paramref name="events"/>.</summary>
    void OnReadiness(ReactorRegistration registration, IoEvents events);
}
