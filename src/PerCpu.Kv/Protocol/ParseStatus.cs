namespace PerCpu.Kv.Protocol;

/// <summary>The outcome of parsing one command.</summary>
internal enum ParseStatus
{
    /// <summary>A whole command was parsed; its arguments were appended.</summary>
    Complete,

    /// <summary>More bytes are needed (a command split across reads).</summary>
    Incomplete,

    /// <summary>Nothing to run (an empty inline line or an empty multibulk): skip it.</summary>
    Empty,

    /// <summary>A protocol error: reply with the error text, then close (as Redis does).</summary>
    Error,
}
