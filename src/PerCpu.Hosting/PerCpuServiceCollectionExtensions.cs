using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using PerCpu;
using PerCpu.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Adds a <see cref="CpuRuntime"/> to a Generic Host: options bound and validated when the host starts, the runtime
/// started and stopped with the host, <see cref="CpuRuntime"/> available by injection, and its
/// <see cref="CpuRuntime.Warning"/> and <see cref="CpuRuntime.UnhandledException"/> events logged through
/// <see cref="Microsoft.Extensions.Logging.ILogger{TCategoryName}"/> of <see cref="CpuRuntime"/>.
/// </summary>
/// <remarks>
/// <para>
/// The runtime starts in <see cref="IHostedLifecycleService.StartingAsync"/>, before any hosted service's
/// <see cref="IHostedService.StartAsync"/>, so a <see cref="BackgroundService"/> can use it from its first line. It is
/// disposed in <see cref="IHostedLifecycleService.StoppedAsync"/>, after every hosted service has stopped: disposal
/// runs everything already accepted. If the host's shutdown timeout
/// (<c>HostOptions.ShutdownTimeout</c>) ends first, a warning says what was abandoned and the host goes on stopping.
/// </para>
/// <para>
/// <see cref="CpuRuntime"/> is a singleton started on first use: the first resolution (typically a hosted service's
/// constructor, which the host runs at the beginning of <c>StartAsync</c>) or the host's <c>StartingAsync</c>, whichever
/// comes first. So constructor injection works everywhere, and a bad setting fails <c>Host.StartAsync</c> with the
/// library's <see cref="ArgumentOutOfRangeException"/>, whose message names the setting and what is allowed. After the
/// host has stopped, the injected runtime is the disposed one (<see cref="CpuRuntime.IsDisposed"/> is true). A runtime
/// resolved from a host that never starts is disposed with the host's service provider.
/// </para>
/// </remarks>
public static class PerCpuServiceCollectionExtensions
{
    /// <summary>Adds a <see cref="CpuRuntime"/> configured by <paramref name="configure"/> and started with the host.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets <see cref="CpuRuntimeOptions"/>; its values are checked when the host starts.</param>
    /// <returns><paramref name="services"/>, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> or <paramref name="configure"/> is null.</exception>
    public static IServiceCollection AddPerCpu(this IServiceCollection services, Action<CpuRuntimeOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        AddPerCpuCore(services).Configure(configure);
        return services;
    }

    /// <summary>
    /// Adds a <see cref="CpuRuntime"/> whose <see cref="CpuRuntimeOptions"/> are bound from <paramref name="configuration"/>
    /// (typically <c>builder.Configuration.GetSection("PerCpu")</c>) and started with the host.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">
    /// A section whose keys are <see cref="CpuRuntimeOptions"/> property names (<c>CpuCount</c>, <c>FifoCapacity</c>,
    /// <c>InboxCapacity</c>, <c>IdleSpin</c>, <c>TickInterval</c>, <c>WaitWarning</c>, <c>WaitTimeout</c>,
    /// <c>StallThreshold</c>, <c>PinThreads</c>, <c>PollMode</c>, <c>ThreadName</c>, <c>MaxSoftInterrupts</c>,
    /// <c>SoftInterruptTiming</c>); time spans as <c>"00:00:00.010"</c>. Missing keys keep their defaults.
    /// </param>
    /// <param name="configure">Optional: applied after binding, to adjust or override bound values.</param>
    /// <returns><paramref name="services"/>, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> or <paramref name="configuration"/> is null.</exception>
    public static IServiceCollection AddPerCpu(this IServiceCollection services, IConfiguration configuration, Action<CpuRuntimeOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        OptionsBuilder<CpuRuntimeOptions> options = AddPerCpuCore(services).Bind(configuration);
        if (configure != null) options.Configure(configure);
        return services;
    }

    private static OptionsBuilder<CpuRuntimeOptions> AddPerCpuCore(IServiceCollection services)
    {
        services.AddOptions();
        services.AddLogging();
        services.TryAddSingleton<PerCpuRuntimeHolder>();
        services.TryAddSingleton(static sp => sp.GetRequiredService<PerCpuRuntimeHolder>().GetOrStart());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, PerCpuHostedService>());
        // Binding errors (a key that does not convert) surface when the host starts, before any hosted service runs.
        // Range checks are the library's own: CpuRuntime.Start runs them when the runtime starts, within Host.StartAsync.
        return services.AddOptions<CpuRuntimeOptions>().ValidateOnStart();
    }
}
