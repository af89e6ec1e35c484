namespace PerCpu.Diagnostics;

/// <summary>The trace points (the seeds' KTR_INFO points for ipiq, plus soft interrupt entry and exit).</summary>
internal enum TraceEvent : byte
{
    /// <summary>A normal send began (send_norm).</summary>
    SendNorm,
    /// <summary>A passive send began (send_pasv).</summary>
    SendPasv,
    /// <summary>A non-blocking send began (send_nbio).</summary>
    SendNbio,
    /// <summary>A non-blocking send was refused (send_fail).</summary>
    SendFail,
    /// <summary>A message is about to run on its target (receive).</summary>
    Receive,
    /// <summary>A parked CPU was woken (cpu_send: the "hardware IPI").</summary>
    CpuSend,
    /// <summary>A send finished (send_end).</summary>
    SendEnd,
    /// <summary>A cpusync interlock began (sync_start).</summary>
    SyncStart,
    /// <summary>A cpusync ended (sync_end).</summary>
    SyncEnd,
    /// <summary>A soft interrupt handler is about to run.</summary>
    SoftintEntry,
    /// <summary>A soft interrupt handler returned.</summary>
    SoftintExit,
    /// <summary>Softnet took an endpoint whose readiness the reactor reported (io_ready; arg: the CPU's open endpoints).</summary>
    IoReady,
    /// <summary>A connection's receive completed (io_receive; arg: bytes, 0 = end of stream, -1 = error).</summary>
    IoReceive,
    /// <summary>A connection's send completed after waiting for the peer (io_send; arg: 0, -1 = error).</summary>
    IoSend,
}
