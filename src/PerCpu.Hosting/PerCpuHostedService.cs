using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace PerCpu.Hosting;

/// <summary>Starts the runtime in <see cref="StartingAsync"/> and disposes it in <see cref="StoppedAsync"/>.</summary>
internal sealed class PerCpuHostedService(
    IOptions<CpuRuntimeOptions> options, PerCpuRuntimeAccessor accessor, ILogger<CpuRuntime> logger) : IHostedLifecycleService
{
    private CpuRuntime? _runtime;

    public Task StartingAsync(CancellationToken cancellationToken)
    {
        // CpuRuntime.Start validates the options and throws ArgumentOutOfRangeException naming the bad setting;
        // Host.StartAsync rethrows it before any hosted service's StartAsync has run.
        CpuRuntime runtime = CpuRuntime.Start(options.Value);
        runtime.Warning += OnWarning;
        runtime.UnhandledException += OnUnhandledException;
        _runtime = runtime;
        accessor.Set(runtime);
        Log.Started(logger, runtime.CpuCount, runtime.ThreadsPinned);
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // After every hosted service's StopAsync: the workers that use the runtime have stopped sending.
    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        CpuRuntime? runtime = _runtime;
        if (runtime == null) return; // start failed or never ran
        Task disposal = runtime.DisposeAsync().AsTask();
        try
        {
            await disposal.WaitAsync(cancellationToken).ConfigureAwait(false);
            Log.Stopped(logger, runtime.GetStatistics().ToString());
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && !disposal.IsCompleted)
        {
            Log.StopAbandoned(logger, runtime.GetStatistics().ToString());
            _ = disposal.ContinueWith(static (t, state) => Log.StopFailed((ILogger)state!, t.Exception!.GetBaseException()),
                logger, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
        catch (Exception e) when (disposal.IsFaulted)
        {
            Log.StopFailed(logger, e);
        }
    }

    private void OnWarning(object? sender, CpuWarningEventArgs e) => Log.Warning(logger, e.Cpu.Id, e.Message);

    private void OnUnhandledException(object? sender, CpuExceptionEventArgs e)
        => Log.UnhandledException(logger, e.Exception, e.Cpu.Id, e.SourceCpu);
}
