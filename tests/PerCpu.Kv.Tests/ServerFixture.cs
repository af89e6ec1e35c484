using System.Net;

namespace PerCpu.Kv.Tests;

/// <summary>A server on a free loopback port with two CPUs, shared by a test class.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public KvServer Server { get; private set; } = null!;

    public IPEndPoint EndPoint => Server.LocalEndPoint;

    public async Task InitializeAsync() => Server = await StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();

    /// <summary>A server for one test: port 0 (tests run beside other assemblies), threads not pinned (a shared machine).</summary>
    public static Task<KvServer> StartAsync(Action<KvServerOptions>? configure = null)
    {
        var options = new KvServerOptions { Port = 0, Cpus = 2, PinThreads = false };
        configure?.Invoke(options);
        return KvServer.StartAsync(options);
    }
}

/// <summary>Waits for a condition by lack of progress (see PerCpu.Tests' Progress): never a deadline on a workload.</summary>
internal static class Progress
{
    public static readonly TimeSpan Stall = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Polls <paramref name="measure"/> until it reaches <paramref name="target"/>; fails only if the value stood still
    /// for a whole <see cref="Stall"/> period.
    /// </summary>
    public static async Task UntilAsync(Func<long> measure, long target, string what)
    {
        long last = measure();
        var still = System.Diagnostics.Stopwatch.StartNew();
        while (last != target)
        {
            await Task.Delay(5);
            long now = measure();
            if (now != last)
            {
                last = now;
                still.Restart();
            }
            else if (still.Elapsed > Stall)
            {
                throw new Xunit.Sdk.XunitException($"No progress for {Stall} waiting for {what}: stuck at {last}, want {target}.");
            }
        }
    }
}
