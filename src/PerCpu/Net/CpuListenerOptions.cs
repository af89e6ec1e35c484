namespace PerCpu.Net;

/// <summary>How a listener spreads accepted connections over its CPUs.</summary>
public enum CpuListenerDistribution
{
    /// <summary>
    /// One listening socket per CPU on the same port (<c>SO_REUSEPORT</c>): the kernel spreads incoming connections by
    /// a hash of their addresses, and each CPU accepts its own with no cross-CPU step. The default: Seastar's and
    /// Glommio's choice. The spread is statistical: a few connections may land unevenly.
    /// </summary>
    ReusePort,

    /// <summary>
    /// One listening socket on the first CPU of the set, which accepts and deals connections to the CPUs in turn (one
    /// IPI each): an even spread, at the cost of that hop and of one CPU doing every accept.
    /// </summary>
    RoundRobin,
}

/// <summary>Options of <see cref="CpuRuntime.ListenTcp"/>.</summary>
public sealed class CpuListenerOptions
{
    /// <summary>The CPUs that own accepted connections; null (the default): all of the runtime's CPUs.</summary>
    public CpuMask? Cpus { get; set; }

    /// <summary>How connections are spread over <see cref="Cpus"/>. Default <see cref="CpuListenerDistribution.ReusePort"/>.</summary>
    public CpuListenerDistribution Distribution { get; set; } = CpuListenerDistribution.ReusePort;

    /// <summary>The listen backlog (pending connections the kernel queues per listening socket). Default 512.</summary>
    public int Backlog { get; set; } = 512;

    /// <summary>Sets <c>TCP_NODELAY</c> on accepted connections (replies go out at once; no Nagle delay). Default true.</summary>
    public bool NoDelay { get; set; } = true;

    /// <summary>Most connections open at once across the listener; beyond it new ones are closed at once. Default: no limit.</summary>
    public int MaxConnections { get; set; } = int.MaxValue;
}
