using PerCpu;

namespace PerCpu.Hosting;

/// <summary>
/// The hosted <see cref="CpuRuntime"/>, readable before the host has started (when it is still <see langword="null"/>).
/// Inject it where the constructor runs before start (a hosted service) and read <see cref="Runtime"/> later.
/// </summary>
public sealed class PerCpuRuntimeAccessor
{
    internal const string NotStartedMessage =
        "The PerCpu runtime has not been started yet: it starts with the host (IHostedLifecycleService.StartingAsync). " +
        "Resolve CpuRuntime after the host has started (in StartAsync or ExecuteAsync), or inject PerCpuRuntimeAccessor " +
        "and read its Runtime then.";

    private CpuRuntime? _runtime;

    /// <summary>The runtime once the host has started it; <see langword="null"/> before. After the host stops it is the disposed runtime.</summary>
    public CpuRuntime? Runtime => Volatile.Read(ref _runtime);

    /// <summary>The runtime, or an <see cref="InvalidOperationException"/> that says the host has not started it yet.</summary>
    /// <exception cref="InvalidOperationException">The host has not started the runtime yet.</exception>
    public CpuRuntime GetRequiredRuntime() => Runtime ?? throw new InvalidOperationException(NotStartedMessage);

    internal void Set(CpuRuntime runtime) => Volatile.Write(ref _runtime, runtime);
}
