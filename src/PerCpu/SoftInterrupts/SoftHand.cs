namespace PerCpu.SoftInterrupts;

/// <summary>
/// One CPU's record of one established soft interrupt (the seed's <c>softhand_t</c> in <c>sc_hand[]</c>), indexed by
/// the handle's table slot. Written only by the owning CPU thread, so scheduling needs no atomics; the one exception is
/// a disposer on another thread reading <see cref="Flags"/> for <see cref="Active"/>, hence the volatile accesses
/// wherever that bit changes.
/// </summary>
internal struct SoftHand
{
    /// <summary>Queued on its level's FIFO and not yet started (<c>SOFTINT_PENDING</c>).</summary>
    public const int Pending = 1;

    /// <summary>Its handler is running here, or blocked: an asynchronous run that has not completed (<c>SOFTINT_ACTIVE</c>).</summary>
    public const int Active = 2;

    /// <summary>The handle, set when it is queued; cleared when a disestablished handle leaves this record.</summary>
    public SoftInterrupt? Handle;

    /// <summary>Next slot in the level's FIFO, or -1 (the seed's <c>sh_q</c> link).</summary>
    public int Next;

    /// <summary><see cref="Pending"/> and <see cref="Active"/>; both may be set (scheduled again while it runs).</summary>
    public int Flags;
}
