using PerCpu;

namespace HostedWorker;

/// <summary>
/// Each round asks every CPU to count its share of a range, then sums the partial counts. Stops on Ctrl+C, or after
/// <c>Worker:Rounds</c> rounds if that is more than zero (then it stops the host itself).
/// </summary>
public sealed class Worker(CpuRuntime runtime, IConfiguration configuration, IHostApplicationLifetime lifetime, ILogger<Worker> logger)
    : BackgroundService
{
    private const long RangePerCpu = 1_000_000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        int rounds = configuration.GetValue("Worker:Rounds", 0);
        var partial = new long[runtime.CpuCount];
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        for (int round = 1; rounds <= 0 || round <= rounds; round++)
        {
            // Each CPU writes only its own slot; InvokeAsync returns when the function has run there.
            var calls = new Task[runtime.CpuCount];
            for (int i = 0; i < runtime.CpuCount; i++)
            {
                Cpu cpu = runtime[i];
                calls[i] = cpu.InvokeAsync(() =>
                {
                    long count = 0, start = cpu.Id * RangePerCpu;
                    for (long n = start; n < start + RangePerCpu; n++)
                        if ((n & 7) == 0) count++;
                    partial[cpu.Id] = count;
                    return count;
                }, stoppingToken).AsTask();
            }
            try { await Task.WhenAll(calls); }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { return; } // Ctrl+C mid-round
            logger.LogInformation("Round {Round}: {Total:N0} multiples of 8 counted on {Cpus} CPUs", round, partial.Sum(), runtime.CpuCount);

            if (!await WaitForNextRound(timer, stoppingToken)) return;
        }
        lifetime.StopApplication();
    }

    private static async Task<bool> WaitForNextRound(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try { return await timer.WaitForNextTickAsync(stoppingToken); }
        catch (OperationCanceledException) { return false; } // Ctrl+C: end cleanly; the host then disposes the runtime
    }
}
