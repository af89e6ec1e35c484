namespace PerCpu;

/// <summary>An exception thrown by a function, task or handler on a CPU; the CPU and the messages behind it went on.</summary>
public sealed class CpuExceptionEventArgs : EventArgs
{
    internal CpuExceptionEventArgs(Cpu cpu, Exception exception, int sourceCpu)
    {
        Cpu = cpu;
        Exception = exception;
        SourceCpu = sourceCpu;
    }

    /// <summary>The CPU the code ran on.</summary>
    public Cpu Cpu { get; }

    /// <summary>What was thrown.</summary>
    public Exception Exception { get; }

    /// <summary>The CPU that sent the message, or -1 for a task or a call from a thread that is not a CPU.</summary>
    public int SourceCpu { get; }
}

/// <summary>A condition worth a log line, such as a CPU that has waited on another for longer than <see cref="CpuRuntimeOptions.WaitWarning"/>.</summary>
public sealed class CpuWarningEventArgs : EventArgs
{
    internal CpuWarningEventArgs(Cpu cpu, string message)
    {
        Cpu = cpu;
        Message = message;
    }

    /// <summary>The CPU the warning is about.</summary>
    public Cpu Cpu { get; }

    /// <summary>A sentence for a log.</summary>
    public string Message { get; }
}
