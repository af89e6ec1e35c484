namespace PerCpu.Diagnostics;

/// <summary>
/// The step of the dispatch loop a CPU is in, as the stall watchdog sees it (<see cref="Cpu.OwnerState.Phase"/>):
/// written by the CPU itself at each step, read by the watchdog.
/// </summary>
internal enum StallPhase : byte
{
    /// <summary>Idle: spinning, parking or parked (never a stall). The default, so a CPU not yet started is idle.</summary>
    Idle = 0,

    /// <summary>Draining IPIs (rings, inbox, cpusync queue): an IPI function is running.</summary>
    Ipis = 1,

    /// <summary>Running soft interrupt handlers (and the IPIs drained between them).</summary>
    SoftInterrupts = 2,

    /// <summary>Running tasks: work posted to the CPU, await continuations.</summary>
    Tasks = 3,

    /// <summary>Held by a cpusync master inside a wait (only IPIs run until it is released).</summary>
    CpuSyncHold = 4,
}
