namespace PerCpu.Ipi;

/// <summary>
/// A call from a thread that is not a CPU, waiting for room in a full inbox without blocking its caller (the blocked
/// writer of a bounded <c>Channel</c>): the message it will enqueue, and its place in the inbox's FIFO of waiters.
/// The inbox's pump moves waiters into the inbox, in order, as the consumer frees slots (<see cref="Inbox"/>).
/// <para>
/// Threads: the owner writes the message fields before it joins the FIFO (under the inbox's waiter lock, which
/// orders them before the pump's read); <see cref="Next"/>, <see cref="Prev"/> and <see cref="State"/> are read and
/// written only under that lock, by the inbox (a pooled operation may join again while the pump that accepted its
/// previous call still finishes with it: both sides hold the lock).
/// </para>
/// </summary>
internal abstract class InboxWaiter
{
    internal enum WaitState : byte { None, Waiting, Accepted, Canceled }

    /// <summary>The message to enqueue (owner writes before it waits; the pump reads).</summary>
    internal Action<object?, long>? WaitFunc;
    internal object? WaitArg1;
    internal long WaitArg2;

    /// <summary>The cancellation registration while waiting (owner writes before it joins the FIFO; the pump or the callback reads under the lock).</summary>
    internal CancellationTokenRegistration WaitRegistration;

    /// <summary>When the wait began (<see cref="System.Diagnostics.Stopwatch"/>; owner writes before it joins; the pump reads, for the wait histogram).</summary>
    internal long WaitStart;

    /// <summary>The inbox waited on (owner writes before it joins; the cancellation callback reads).</summary>
    internal Inbox? WaitInbox;

    /// <summary>
    /// Set (by the owner, before it joins the FIFO, never cleared) when it waits with a token that can cancel it: such
    /// a waiter must never be reused (a late cancellation callback still holds it), so its owner does not pool it.
    /// A call that found room at once is never marked, and stays pooled with any token.
    /// </summary>
    internal bool Unpooled;

    /// <summary>FIFO links and state: under the inbox's waiter lock only.</summary>
    internal InboxWaiter? Next, Prev;
    internal WaitState State;

    /// <summary>
    /// The token fired before the message was accepted: the message will never be enqueued. Called once, outside the
    /// lock, after the waiter left the FIFO; complete the caller's operation as cancelled.
    /// </summary>
    internal abstract void OnWaitCanceled(CancellationToken cancellationToken);
}
