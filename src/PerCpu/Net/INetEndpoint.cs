namespace PerCpu.Net;

/// <summary>
/// A socket owned by one CPU (a connection, or one CPU's part of a listener), as its CPU's I/O code sees it. Every
/// member is the owner's (the CPU thread's).
/// </summary>
internal interface INetEndpoint
{
    /// <summary>Next in the CPU's softnet FIFO (intrusive: queuing allocates nothing).</summary>
    INetEndpoint? NetNext { get; set; }

    /// <summary>True while in the softnet FIFO.</summary>
    bool NetQueued { get; set; }

    /// <summary>Softnet: do the I/O the reported readiness allows and complete the awaiters it satisfies.</summary>
    void OnSoftNet();

    /// <summary>The runtime's disposal began: stop taking new work (accepts, receives), finish what was handed over (sends).</summary>
    void OnShutdown();

    /// <summary>The CPU thread is exiting: close now, failing whatever is still pending.</summary>
    void Abort();
}
