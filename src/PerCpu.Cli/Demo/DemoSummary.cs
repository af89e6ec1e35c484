using System.Text.Json.Serialization;

namespace PerCpu.Cli.Demo;

/// <summary>What <c>percpu demo --json</c> prints: the whole run, summed, per CPU and per soft interrupt level.</summary>
internal sealed record DemoSummary
{
    /// <summary>Virtual CPUs (threads) of the runtime.</summary>
    public required int Cpus { get; init; }

    /// <summary>True if every CPU thread was pinned to a core.</summary>
    public required bool ThreadsPinned { get; init; }

    /// <summary>How long the workload ran.</summary>
    public required double Seconds { get; init; }

    /// <summary>Messages sent per second, all CPUs and outside threads.</summary>
    public required double SentPerSecond { get; init; }

    /// <summary>Messages executed per second, all CPUs.</summary>
    public required double ReceivedPerSecond { get; init; }

    /// <summary>The runtime's statistics summed (cpu = -1).</summary>
    public required CpuCounts Totals { get; init; }

    /// <summary>The runtime's statistics per CPU.</summary>
    public required CpuCounts[] PerCpu { get; init; }

    /// <summary>Soft interrupt runs and blocks per level, highest priority first.</summary>
    public required SoftLevelCounts[] SoftInterrupts { get; init; }

    /// <summary>What the workload did.</summary>
    public required WorkloadCounts Workload { get; init; }

    /// <summary>Messages the runtime accepted (sent, less refused try-sends).</summary>
    public required long Accepted { get; init; }

    /// <summary>Messages that ran.</summary>
    public required long Executed { get; init; }

    /// <summary>True if every accepted message ran: nothing was lost, not even at shutdown.</summary>
    public required bool AllAcceptedRan { get; init; }

    /// <summary>Garbage collections during the run (gen 0, 1, 2) and the time the runtime was paused for them: every CPU stops then.</summary>
    public required GcCounts Gc { get; init; }

    /// <summary>Warnings the runtime raised (a CPU that waited on another for over a second: an overloaded machine, or a bug).</summary>
    public long Warnings { get; init; }

    /// <summary>The last of them, if any.</summary>
    public string? LastWarning { get; init; }

    /// <summary>Set by <c>percpu trace</c>: where the trace went and what it holds.</summary>
    public TraceInfo? Trace { get; init; }
}

/// <summary>One CPU's counters (or the total, with <see cref="Cpu"/> = -1).</summary>
internal sealed record CpuCounts(
    int Cpu, long Sent, long Received, long Passive, long FifoFull, long SendFailed, long WakesSent, long WakesReceived,
    long WakesAvoided, long Errors, long CpuSyncs, long SoftInterrupts, long SoftInterruptBlocks);

/// <summary>One soft interrupt level, summed over the CPUs.</summary>
internal sealed record SoftLevelCounts(string Level, long Count, long Blocks);

/// <summary>The workload's own counts.</summary>
internal sealed record WorkloadCounts(long Rounds, long Invokes, long Broadcasts, long RunOnAll, long SoftInterruptSchedules);

/// <summary>Garbage collections during the run.</summary>
internal sealed record GcCounts(int Gen0, int Gen1, int Gen2, double PauseSeconds);

/// <summary>A written trace.</summary>
internal sealed record TraceInfo(string Path, int Events, long LostEvents, double Seconds);

/// <summary>Source-generated JSON for the summary (no reflection: the tool stays trimmable).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(DemoSummary))]
internal sealed partial class DemoJsonContext : JsonSerializerContext;
