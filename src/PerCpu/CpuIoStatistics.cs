namespace PerCpu;

/// <summary>
/// A snapshot of a CPU's (or, summed, a runtime's) socket and timer counters: <see cref="Cpu.GetIoStatistics"/>,
/// <see cref="CpuRuntime.GetIoStatistics"/>. The counts are totals since the runtime started
/// (<see cref="CpuRuntime.ResetStatistics"/> does not reset them); <see cref="TimersArmed"/> is a level.
/// </summary>
public readonly record struct CpuIoStatistics
{
    /// <summary>Connections accepted by listeners and owned by the CPU.</summary>
    public long ConnectionsAccepted { get; init; }

    /// <summary>Outbound connections established (<see cref="Cpu.ConnectTcpAsync"/>).</summary>
    public long ConnectionsOpened { get; init; }

    /// <summary>Connections closed.</summary>
    public long ConnectionsClosed { get; init; }

    /// <summary>Connections open now: accepted plus opened minus closed.</summary>
    public long ConnectionsOpen => ConnectionsAccepted + ConnectionsOpened - ConnectionsClosed;

    /// <summary>Bytes received.</summary>
    public long BytesReceived { get; init; }

    /// <summary>Bytes sent.</summary>
    public long BytesSent { get; init; }

    /// <summary>Receives that found no data and waited for the socket to become readable.</summary>
    public long ReceiveWaits { get; init; }

    /// <summary>Sends that found the socket buffer full and waited for the peer to read (backpressure).</summary>
    public long SendWaits { get; init; }

    /// <summary>Connection handlers that threw: their connections were closed, the CPU went on.</summary>
    public long HandlerErrors { get; init; }

    /// <summary>Timer callouts fired (<see cref="CpuTimer"/>, <see cref="Cpu.Delay"/>).</summary>
    public long TimersFired { get; init; }

    /// <summary>Timers armed now.</summary>
    public long TimersArmed { get; init; }

    /// <summary>Adds two snapshots field by field (a runtime's total).</summary>
    public static CpuIoStatistics operator +(CpuIoStatistics a, CpuIoStatistics b) => new()
    {
        ConnectionsAccepted = a.ConnectionsAccepted + b.ConnectionsAccepted, ConnectionsOpened = a.ConnectionsOpened + b.ConnectionsOpened,
        ConnectionsClosed = a.ConnectionsClosed + b.ConnectionsClosed, BytesReceived = a.BytesReceived + b.BytesReceived,
        BytesSent = a.BytesSent + b.BytesSent, ReceiveWaits = a.ReceiveWaits + b.ReceiveWaits, SendWaits = a.SendWaits + b.SendWaits,
        HandlerErrors = a.HandlerErrors + b.HandlerErrors, TimersFired = a.TimersFired + b.TimersFired, TimersArmed = a.TimersArmed + b.TimersArmed,
    };
}
