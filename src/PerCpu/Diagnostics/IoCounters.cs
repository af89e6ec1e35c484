namespace PerCpu.Diagnostics;

/// <summary>
/// One CPU's I/O counters (issue 12): written by the owning CPU only, with plain stores on a line of their own; read by
/// any thread with Volatile.Read (a snapshot may be a moment old, never torn).
/// </summary>
internal sealed class IoCounters
{
#pragma warning disable CS0169, IDE0051 // padding
    private readonly long _pad0, _pad1, _pad2, _pad3, _pad4, _pad5, _pad6, _pad7;
#pragma warning restore CS0169, IDE0051
    /// <summary>Connections accepted by this CPU's listeners (or dealt to it).</summary>
    public long Accepted;
    /// <summary>Outbound connections established.</summary>
    public long Connected;
    /// <summary>Connections closed.</summary>
    public long Closed;
    public long BytesReceived;
    public long BytesSent;
    /// <summary>Receives and sends that could not complete at once and waited for readiness.</summary>
    public long ReceiveWaits;
    public long SendWaits;
    /// <summary>Connection handlers that threw (the connection was closed, the CPU went on).</summary>
    public long HandlerErrors;
    /// <summary>Callouts fired by softclock, and armed now (Cpu.Timers.cs).</summary>
    public long TimersFired;
    public long TimersArmed;

    public CpuIoStatistics Snapshot() => new()
    {
        ConnectionsAccepted = Volatile.Read(ref Accepted), ConnectionsOpened = Volatile.Read(ref Connected),
        ConnectionsClosed = Volatile.Read(ref Closed), BytesReceived = Volatile.Read(ref BytesReceived),
        BytesSent = Volatile.Read(ref BytesSent), ReceiveWaits = Volatile.Read(ref ReceiveWaits),
        SendWaits = Volatile.Read(ref SendWaits), HandlerErrors = Volatile.Read(ref HandlerErrors),
        TimersFired = Volatile.Read(ref TimersFired), TimersArmed = Volatile.Read(ref TimersArmed),
    };
#pragma warning disable CS0169, IDE0051
    private readonly long _pad8, _pad9, _pad10, _pad11, _pad12, _pad13, _pad14, _pad15;
#pragma warning restore CS0169, IDE0051
}
