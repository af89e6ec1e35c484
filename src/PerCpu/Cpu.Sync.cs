namespace PerCpu;

// Hook points of the dispatch loop for CPU synchronization (lwkt_cpusync_*); filled in by the cpusync issue.
public sealed partial class Cpu
{
    /// <summary>Runs the cpusync queue once (the seed processes gd_cpusyncq after the IPI rings). Returns true if it ran anything.</summary>
    private bool ProcessCpuSyncQueue() => false;

    /// <summary>True if the cpusync queue holds work.</summary>
    private bool HasCpuSyncWork() => false;

    /// <summary>True while this CPU is held by a cpusync master (it must run IPIs only: no soft interrupts, no tasks).</summary>
    private bool IsInterlocked() => false;
}
