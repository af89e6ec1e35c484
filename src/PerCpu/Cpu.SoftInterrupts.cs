namespace PerCpu;

// Hook points of the dispatch loop for soft interrupts (NetBSD kern_softint.c); filled in by the soft interrupt issue.
public sealed partial class Cpu
{
    /// <summary>Runs pending soft interrupt levels, highest first (softint_execute). Returns true if a handler ran.</summary>
    private bool RunSoftInterrupts() => false;

    /// <summary>True if a soft interrupt is pending on this CPU.</summary>
    private bool HasSoftInterruptWork() => false;

    /// <summary>Soft interrupt schedules accepted for this CPU (monotonic), for the shutdown quiescence check.</summary>
    private long AcceptedSoftInterruptWork() => 0;

    /// <summary>Soft interrupt runs finished on this CPU (monotonic), for the shutdown quiescence check.</summary>
    private long FinishedSoftInterruptWork() => 0;
}
