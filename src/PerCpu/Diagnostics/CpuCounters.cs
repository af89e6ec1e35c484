using System.Runtime.InteropServices;

namespace PerCpu.Diagnostics;

/// <summary>
/// One CPU's raw counters, padded against false sharing. Single writer: the owning CPU thread increments with plain
/// stores (no atomics on the hot path); readers on other threads use <see cref="Snapshot"/>, whose 64-bit reads
/// cannot tear on 64-bit hardware and may lag by a few increments.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal sealed class CpuCounters
{
#pragma warning disable CS0169, IDE0051 // padding
    private readonly long _pad0, _pad1, _pad2, _pad3, _pad4, _pad5, _pad6, _pad7;
#pragma warning restore CS0169, IDE0051
    public long Sent;
    public long FifoFull;
    public long Avoided;
    public long Passive;
    public long SendFailed;
    public long WakesSent;
    public long WakesReceived;
    public long Received;
    public long Errors;
    public long CpuSyncs;
    /// <summary>The one field the owner does not write: stalls reported by the stall watchdog, its only writer (under its lock).</summary>
    public long Stalls;
    /// <summary>Times the owner parked (slept in its parker): what tickless idle keeps at zero while nothing happens. Not in <see cref="CpuStatistics"/>: tests and diagnostics read it.</summary>
    public long Parks;
#pragma warning disable CS0169, IDE0051
    private readonly long _pad8, _pad9, _pad10, _pad11, _pad12, _pad13, _pad14, _pad15;
#pragma warning restore CS0169, IDE0051

    public CpuStatistics Snapshot() => new()
    {
        Sent = Volatile.Read(ref Sent), FifoFull = Volatile.Read(ref FifoFull), Avoided = Volatile.Read(ref Avoided),
        Passive = Volatile.Read(ref Passive), SendFailed = Volatile.Read(ref SendFailed), WakesSent = Volatile.Read(ref WakesSent),
        WakesReceived = Volatile.Read(ref WakesReceived), Received = Volatile.Read(ref Received), Errors = Volatile.Read(ref Errors),
        CpuSyncs = Volatile.Read(ref CpuSyncs), Stalls = Volatile.Read(ref Stalls),
    };
}
