using System.Diagnostics;

namespace PerCpu.Timers;

/// <summary>
/// A timer as the <see cref="TimerWheel"/> sees it: intrusive, it carries its own links, so arming, re-arming and
/// cancelling allocate nothing (NetBSD's <c>struct callout</c> is embedded in its owner the same way). Subclass it and
/// override <see cref="Fire"/>, or use <see cref="CallbackTimerNode"/>. Owner-only like its wheel: a node belongs to one
/// wheel at a time and is touched only on that wheel's CPU.
/// </summary>
[DebuggerDisplay("Due = {Due}, Armed = {IsArmed}")]
internal abstract class TimerNode
{
    /// <summary>Not in any list.</summary>
    internal const int Idle = -1;

    /// <summary>Neighbours in the circular doubly-linked list of its slot (or of the wheel's expired list).</summary>
    internal TimerNode? Next, Prev;

    /// <summary>Which list holds it: a wheel slot index, the wheel's expired list, or <see cref="Idle"/>.</summary>
    internal int Where = Idle;

    /// <summary>The wheel it is armed in (null when idle): catches a node armed in one wheel and removed through another.</summary>
    internal TimerWheel? Wheel;

    /// <summary>Due time, a <see cref="Stopwatch"/> timestamp; meaningful while armed.</summary>
    public long Due { get; internal set; }

    /// <summary>True from <see cref="TimerWheel.Add"/> until it fires or is removed.</summary>
    public bool IsArmed => Where != Idle;

    /// <summary>
    /// Called by <see cref="TimerWheel.Advance"/> once the due time has passed; the node is idle again when this runs, so
    /// it may re-arm itself. An exception propagates out of <c>Advance</c>; the other expired nodes fire on the next call.
    /// </summary>
    protected internal abstract void Fire();

    /// <summary>
    /// Called instead of <see cref="Fire"/> for a node still armed when its CPU stops for good (the runtime was
    /// disposed): the node is already idle. Owner thread, as it exits. The default does nothing: the timer is dropped.
    /// </summary>
    protected internal virtual void Abandon()
    {
    }
}
