using Microsoft.Extensions.Logging;

namespace PerCpu.Hosting;

/// <summary>
/// The log messages of <c>PerCpu.Hosting</c>, category <c>PerCpu.CpuRuntime</c>. Event ids are stable; they are listed
/// in the package README.
/// </summary>
internal static partial class Log
{
    /// <summary>Event ids, for filters and tests.</summary>
    internal static class Ids
    {
        public const int Started = 1;
        public const int Warning = 2;
        public const int UnhandledException = 3;
        public const int Stopped = 4;
        public const int StopAbandoned = 5;
        public const int StopFailed = 6;
    }

    [LoggerMessage(EventId = Ids.Started, EventName = "RuntimeStarted", Level = LogLevel.Information,
        Message = "PerCpu runtime started: {CpuCount} CPUs, threads pinned: {ThreadsPinned}.")]
    public static partial void Started(ILogger logger, int cpuCount, bool threadsPinned);

    [LoggerMessage(EventId = Ids.Warning, EventName = "RuntimeWarning", Level = LogLevel.Warning,
        Message = "CPU {CpuId}: {WarningMessage}")]
    public static partial void Warning(ILogger logger, int cpuId, string warningMessage);

    [LoggerMessage(EventId = Ids.UnhandledException, EventName = "UnhandledException", Level = LogLevel.Error,
        Message = "Unhandled exception on CPU {CpuId} (sent from CPU {SourceCpu}; -1: a task or a thread that is not a CPU). The CPU went on.")]
    public static partial void UnhandledException(ILogger logger, Exception exception, int cpuId, int sourceCpu);

    [LoggerMessage(EventId = Ids.Stopped, EventName = "RuntimeStopped", Level = LogLevel.Information,
        Message = "PerCpu runtime stopped: everything accepted ran. {Statistics}")]
    public static partial void Stopped(ILogger logger, string statistics);

    [LoggerMessage(EventId = Ids.StopAbandoned, EventName = "RuntimeStopAbandoned", Level = LogLevel.Warning,
        Message = "The host's shutdown timeout ended while the PerCpu runtime was still draining accepted work: the host stops " +
                  "without waiting for it. Work still in flight may not run; the CPU threads end when disposal finishes, if it does. {Statistics}")]
    public static partial void StopAbandoned(ILogger logger, string statistics);

    [LoggerMessage(EventId = Ids.StopFailed, EventName = "RuntimeStopFailed", Level = LogLevel.Error,
        Message = "Disposing the PerCpu runtime failed.")]
    public static partial void StopFailed(ILogger logger, Exception exception);
}
