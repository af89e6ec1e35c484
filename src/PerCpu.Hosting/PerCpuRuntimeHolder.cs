using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace PerCpu.Hosting;

/// <summary>
/// Owns the hosted runtime: starts it on first use (the first resolution of <see cref="CpuRuntime"/>, or the host's
/// <c>StartingAsync</c>, whichever comes first), once, and wires its events to the log.
/// </summary>
internal sealed class PerCpuRuntimeHolder(IOptions<CpuRuntimeOptions> options, ILogger<CpuRuntime> logger, IServiceProvider services)
{
    private readonly Lock _lock = new();
    private CpuRuntime? _runtime;

    internal ILogger Logger => logger;

    /// <summary>The runtime if it has been started, else null.</summary>
    internal CpuRuntime? Runtime => Volatile.Read(ref _runtime);

    /// <summary>The runtime, started now if it was not. Throws the library's exception for a bad setting (and starts nothing).</summary>
    internal CpuRuntime GetOrStart()
    {
        if (Volatile.Read(ref _runtime) is { } started) return started;
        lock (_lock)
        {
            if (_runtime is { } raced) return raced;
            // CpuRuntime.Start validates the options: ArgumentOutOfRangeException naming the bad setting and what is allowed.
            // The meter comes from the host's IMeterFactory (the Generic Host registers one), as ASP.NET Core's do.
            CpuRuntime runtime = CpuRuntime.Start(options.Value, services.GetService<IMeterFactory>());
            runtime.Warning += OnWarning;
            runtime.UnhandledException += OnUnhandledException;
            Log.Started(logger, runtime.CpuCount, runtime.ThreadsPinned);
            Volatile.Write(ref _runtime, runtime);
            return runtime;
        }
    }

    private void OnWarning(object? sender, CpuWarningEventArgs e) => Log.Warning(logger, e.Cpu.Id, e.Message);

    private void OnUnhandledException(object? sender, CpuExceptionEventArgs e)
        => Log.UnhandledException(logger, e.Exception, e.Cpu.Id, e.SourceCpu);
}
