using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace PerCpu.Hosting;

/// <summary>Makes sure the runtime runs by <see cref="StartingAsync"/> and disposes it in <see cref="StoppedAsync"/>.</summary>
internal sealed class PerCpuHostedService(PerCpuRuntimeHolder holder) : IHostedLifecycleService
{
    // Usually a hosted service's constructor has already started the runtime (constructor injection); if not, start it
    // here, before any hosted service's StartAsync. A bad setting fails Host.StartAsync with the library's exception.
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        holder.GetOrStart();
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // After every hosted service's StopAsync, whatever the registration order: the workers that use the runtime have
    // stopped sending. Disposal drains everything accepted, within the host's shutdown timeout.
    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        CpuRuntime? runtime = holder.Runtime;
        if (runtime == null) return; // start failed
        ILogger logger = holder.Logger;
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
}
