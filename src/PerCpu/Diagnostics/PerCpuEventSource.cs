using System.Diagnostics.CodeAnalysis;
using System.Diagnostics.Tracing;

namespace PerCpu.Diagnostics;

/// <summary>
/// The <c>PerCpu</c> event source, for <c>dotnet-trace</c>, PerfView and in-process <see cref="EventListener"/>s:
/// runtime start and stop, warnings and unhandled exceptions (keyword <see cref="Keywords.Runtime"/>), and, at
/// <see cref="EventLevel.Verbose"/> with keyword <see cref="Keywords.TracePoints"/>, every trace point of every CPU
/// (the same events as the trace ring). Enabling the trace points installs forwarding rings on every live runtime's
/// CPUs; while no listener wants them they cost nothing. Example: <c>dotnet-trace collect -p PID --providers PerCpu:0x1:5</c>.
/// </summary>
[EventSource(Name = CpuRuntime.DiagnosticsName)]
internal sealed class PerCpuEventSource : EventSource
{
    /// <summary>The one instance.</summary>
    public static readonly PerCpuEventSource Log = new();

    /// <summary>Event keywords (the filter a listener passes).</summary>
    public static class Keywords
    {
        /// <summary>Every trace point (send_norm, receive, cpu_send, ...): very many events; Verbose level.</summary>
        public const EventKeywords TracePoints = (EventKeywords)0x1;

        /// <summary>Runtime start and stop, warnings, unhandled exceptions.</summary>
        public const EventKeywords Runtime = (EventKeywords)0x2;
    }

    private const int TracePointId = 1, WarningId = 2, UnhandledExceptionId = 3, RuntimeStartedId = 4, RuntimeStoppedId = 5, StallId = 6;

    private PerCpuEventSource()
    {
    }

    /// <summary>True if a listener wants the trace points.</summary>
    internal bool TracePointsEnabled => IsEnabled(EventLevel.Verbose, Keywords.TracePoints);

    /// <summary>A listener came or went: runtimes install or remove the forwarding rings.</summary>
    protected override void OnEventCommand(EventCommandEventArgs command) => CpuRuntime.OnTracePointListenersChanged(TracePointsEnabled);

    /// <summary>One trace point (see <see cref="CpuTraceEvent.Name"/> for the points).</summary>
    [Event(TracePointId, Level = EventLevel.Verbose, Keywords = Keywords.TracePoints,
        Message = "{2}: CPU {3} -> CPU {4} {5} arg={6}")]
    [UnconditionalSuppressMessage("ReflectionAnalysis", "IL2026", Justification = "Parameters are primitives and strings.")]
    public unsafe void TracePoint(int runtimeId, int cpu, string point, int sourceCpu, int targetCpu, string function, long argument)
    {
        if (!IsEnabled()) return;
        fixed (char* pPoint = point)
        fixed (char* pFunction = function)
        {
            EventData* data = stackalloc EventData[7];
            data[0] = Data(&runtimeId, sizeof(int));
            data[1] = Data(&cpu, sizeof(int));
            data[2] = Data(pPoint, (point.Length + 1) * 2);
            data[3] = Data(&sourceCpu, sizeof(int));
            data[4] = Data(&targetCpu, sizeof(int));
            data[5] = Data(pFunction, (function.Length + 1) * 2);
            data[6] = Data(&argument, sizeof(long));
            WriteEventCore(TracePointId, 7, data);
        }
    }

    /// <summary>A warning the runtime raised (<see cref="CpuRuntime.Warning"/>).</summary>
    [Event(WarningId, Level = EventLevel.Warning, Keywords = Keywords.Runtime, Message = "CPU {1}: {2}")]
    [UnconditionalSuppressMessage("ReflectionAnalysis", "IL2026", Justification = "Parameters are primitives and strings.")]
    public unsafe void Warning(int runtimeId, int cpu, string message)
    {
        if (!IsEnabled()) return;
        fixed (char* pMessage = message)
        {
            EventData* data = stackalloc EventData[3];
            data[0] = Data(&runtimeId, sizeof(int));
            data[1] = Data(&cpu, sizeof(int));
            data[2] = Data(pMessage, (message.Length + 1) * 2);
            WriteEventCore(WarningId, 3, data);
        }
    }

    /// <summary>A function, task or handler threw (<see cref="CpuRuntime.UnhandledException"/>); the CPU went on.</summary>
    [Event(UnhandledExceptionId, Level = EventLevel.Error, Keywords = Keywords.Runtime,
        Message = "CPU {1} (message from CPU {2}): {3}: {4}")]
    [UnconditionalSuppressMessage("ReflectionAnalysis", "IL2026", Justification = "Parameters are primitives and strings.")]
    public unsafe void UnhandledException(int runtimeId, int cpu, int sourceCpu, string exceptionType, string message)
    {
        if (!IsEnabled()) return;
        fixed (char* pType = exceptionType)
        fixed (char* pMessage = message)
        {
            EventData* data = stackalloc EventData[5];
            data[0] = Data(&runtimeId, sizeof(int));
            data[1] = Data(&cpu, sizeof(int));
            data[2] = Data(&sourceCpu, sizeof(int));
            data[3] = Data(pType, (exceptionType.Length + 1) * 2);
            data[4] = Data(pMessage, (message.Length + 1) * 2);
            WriteEventCore(UnhandledExceptionId, 5, data);
        }
    }

    /// <summary>
    /// The stall watchdog's report (also raised as a <see cref="Warning"/> with the full sentence): CPU <paramref name="cpu"/>
    /// has been kept from its loop for <paramref name="elapsedMs"/> ms in <paramref name="phase"/> running
    /// <paramref name="function"/>, with <paramref name="waiting"/> messages and tasks behind it; or, with
    /// <paramref name="rewoken"/>, it was parked with that much published work undrained and was woken again.
    /// </summary>
    [Event(StallId, Level = EventLevel.Warning, Keywords = Keywords.Runtime,
        Message = "CPU {1} stalled for {4} ms in {2} running {3}; {5} waiting; woken again: {6}")]
    [UnconditionalSuppressMessage("ReflectionAnalysis", "IL2026", Justification = "Parameters are primitives and strings.")]
    public unsafe void Stall(int runtimeId, int cpu, string phase, string function, long elapsedMs, long waiting, bool rewoken)
    {
        if (!IsEnabled()) return;
        int rewokenValue = rewoken ? 1 : 0; // an EventSource bool is 4 bytes
        fixed (char* pPhase = phase)
        fixed (char* pFunction = function)
        {
            EventData* data = stackalloc EventData[7];
            data[0] = Data(&runtimeId, sizeof(int));
            data[1] = Data(&cpu, sizeof(int));
            data[2] = Data(pPhase, (phase.Length + 1) * 2);
            data[3] = Data(pFunction, (function.Length + 1) * 2);
            data[4] = Data(&elapsedMs, sizeof(long));
            data[5] = Data(&waiting, sizeof(long));
            data[6] = Data(&rewokenValue, sizeof(int));
            WriteEventCore(StallId, 7, data);
        }
    }

    /// <summary>A runtime was created.</summary>
    [Event(RuntimeStartedId, Level = EventLevel.Informational, Keywords = Keywords.Runtime, Message = "Runtime {0} started with {1} CPUs")]
    public void RuntimeStarted(int runtimeId, int cpuCount)
    {
        if (IsEnabled()) WriteEvent(RuntimeStartedId, runtimeId, cpuCount);
    }

    /// <summary>A runtime finished disposing: everything accepted has run and its threads have exited.</summary>
    [Event(RuntimeStoppedId, Level = EventLevel.Informational, Keywords = Keywords.Runtime, Message = "Runtime {0} stopped")]
    public void RuntimeStopped(int runtimeId)
    {
        if (IsEnabled()) WriteEvent(RuntimeStoppedId, runtimeId);
    }

    private static unsafe EventData Data(void* pointer, int size) => new() { DataPointer = (nint)pointer, Size = size };
}
