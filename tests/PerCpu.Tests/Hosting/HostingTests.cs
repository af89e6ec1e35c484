using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace PerCpu.Tests.Hosting;

public class HostingTests
{
    private static IHost Build(Action<IServiceCollection, IConfiguration> addPerCpu, RecordingLoggerProvider? logs = null,
        Dictionary<string, string?>? settings = null)
    {
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        if (settings != null) builder.Configuration.AddInMemoryCollection(settings);
        if (logs != null) builder.Logging.AddProvider(logs).SetMinimumLevel(LogLevel.Trace);
        addPerCpu(builder.Services, builder.Configuration);
        return builder.Build();
    }

    /// <summary>The entries of the runtime's category (the host logs its own events with overlapping ids).</summary>
    private static IEnumerable<RecordingLoggerProvider.Entry> Runtime(RecordingLoggerProvider logs)
        => logs.Entries.Where(e => e.Category == typeof(CpuRuntime).FullName);

    [Fact]
    public async Task Runtime_is_injected_runs_work_and_is_disposed_after_stop()
    {
        using IHost host = Build((s, _) => s.AddPerCpu(o => o.CpuCount = 2));
        await host.StartAsync().WithHangDetector();

        var runtime = host.Services.GetRequiredService<CpuRuntime>();
        Assert.Equal(2, runtime.CpuCount);
        Assert.False(runtime.IsDisposed);
        for (int i = 0; i < runtime.CpuCount; i++)
        {
            int id = i;
            Assert.Equal(id, await runtime[id].InvokeAsync(() => Cpu.Current!.Id).AsTask().WithHangDetector());
        }

        await host.StopAsync().WithHangDetector();
        Assert.True(runtime.IsDisposed);
    }

    [Fact]
    public async Task Meter_comes_from_the_hosts_IMeterFactory()
    {
        using IHost host = Build((s, _) => { s.AddMetrics(); s.AddPerCpu(o => o.CpuCount = 2); });
        await host.StartAsync().WithHangDetector();
        var runtime = host.Services.GetRequiredService<CpuRuntime>();
        var factory = host.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        Assert.Same(factory, runtime.Meter.Scope); // the factory made it, and disposes it with the host
        Assert.Equal(CpuRuntime.DiagnosticsName, runtime.Meter.Name);
        Assert.Contains(runtime.Meter.Tags!, t => t.Key == "percpu.runtime.id");
        await host.StopAsync().WithHangDetector();
    }

    [Fact]
    public async Task Runtime_resolved_before_start_is_the_one_the_host_runs_and_stops()
    {
        using IHost host = Build((s, _) => s.AddPerCpu(o => o.CpuCount = 2));
        var early = host.Services.GetRequiredService<CpuRuntime>(); // started on first use
        Assert.False(early.IsDisposed);
        await host.StartAsync().WithHangDetector();
        Assert.Same(early, host.Services.GetRequiredService<CpuRuntime>());
        await host.StopAsync().WithHangDetector();
        Assert.True(early.IsDisposed);
    }

    private sealed class SendsOnStop(CpuRuntime runtime, long[] ran) : IHostedService
    {
        public const int Messages = 100;

        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken)
        {
            for (int i = 0; i < Messages; i++)
                runtime[i % runtime.CpuCount].Send(static (o, _) => Interlocked.Increment(ref ((long[])o!)[0]), ran);
            return Task.CompletedTask;
        }
    }

    [Fact]
    public async Task Hosted_service_registered_first_gets_the_runtime_by_constructor_and_can_send_while_stopping()
    {
        var ran = new long[1];
        using IHost host = Build((s, _) =>
        {
            // Registered before AddPerCpu: stopped after it in StopAsync order, yet the runtime outlives it (StoppedAsync).
            s.AddSingleton(ran).AddHostedService<SendsOnStop>();
            s.AddPerCpu(o => o.CpuCount = 2);
        });
        await host.StartAsync().WithHangDetector();
        await host.StopAsync().WithHangDetector();
        Assert.Equal(SendsOnStop.Messages, Volatile.Read(ref ran[0]));
        Assert.True(host.Services.GetRequiredService<CpuRuntime>().IsDisposed);
    }

    [Fact]
    public async Task Configuration_section_is_bound()
    {
        using IHost host = Build((s, c) => s.AddPerCpu(c.GetSection("PerCpu")), settings: new()
        {
            ["PerCpu:CpuCount"] = "2",
            ["PerCpu:TickInterval"] = "00:00:00.020",
            ["PerCpu:FifoCapacity"] = "1024",
            ["PerCpu:PinThreads"] = "false",
            ["PerCpu:ThreadName"] = "hosted",
        });
        await host.StartAsync().WithHangDetector();
        try
        {
            CpuRuntimeOptions options = host.Services.GetRequiredService<IOptions<CpuRuntimeOptions>>().Value;
            Assert.Equal(2, options.CpuCount);
            Assert.Equal(TimeSpan.FromMilliseconds(20), options.TickInterval);
            Assert.Equal(1024, options.FifoCapacity);
            Assert.False(options.PinThreads);
            Assert.Equal(2, host.Services.GetRequiredService<CpuRuntime>().CpuCount);
            Assert.False(host.Services.GetRequiredService<CpuRuntime>().ThreadsPinned);
        }
        finally
        {
            await host.StopAsync().WithHangDetector();
        }
    }

    [Fact]
    public async Task Bad_FifoCapacity_fails_host_start_with_the_reason()
    {
        using IHost host = Build((s, _) => s.AddPerCpu(o => { o.CpuCount = 2; o.FifoCapacity = 100; }));
        Exception e = await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync());
        Assert.Contains("FifoCapacity", e.Message);
        Assert.Contains("power of two", e.Message);
        // Nothing was started; the next resolution tries again and fails the same way.
        var again = Assert.Throws<ArgumentOutOfRangeException>(() => host.Services.GetRequiredService<CpuRuntime>());
        Assert.Equal("FifoCapacity", again.ParamName);
    }

    [Fact]
    public async Task Bad_FifoCapacity_from_configuration_fails_host_start()
    {
        using IHost host = Build((s, c) => s.AddPerCpu(c.GetSection("PerCpu")),
            settings: new() { ["PerCpu:CpuCount"] = "2", ["PerCpu:FifoCapacity"] = "100" });
        Exception e = await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync());
        Assert.Contains("FifoCapacity", e.Message);
    }

    [Fact]
    public async Task Value_that_does_not_convert_fails_host_start()
    {
        using IHost host = Build((s, c) => s.AddPerCpu(c.GetSection("PerCpu")),
            settings: new() { ["PerCpu:CpuCount"] = "two" });
        Exception e = await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync());
        Assert.Contains("CpuCount", e.ToString());
    }

    [Fact]
    public async Task Exception_in_an_IPI_function_is_logged_with_its_event_id()
    {
        var logs = new RecordingLoggerProvider();
        using IHost host = Build((s, _) => s.AddPerCpu(o => o.CpuCount = 2), logs);
        await host.StartAsync().WithHangDetector();
        var runtime = host.Services.GetRequiredService<CpuRuntime>();

        runtime[1].Send(static (_, _) => throw new InvalidOperationException("boom from an IPI"));
        await host.StopAsync().WithHangDetector(); // drains: the function has run, and its error been raised, before this returns

        RecordingLoggerProvider.Entry entry = Assert.Single(Runtime(logs), e => e.EventId.Id == 3);
        Assert.Equal("UnhandledException", entry.EventId.Name);
        Assert.Equal(typeof(CpuRuntime).FullName, entry.Category);
        Assert.Equal(LogLevel.Error, entry.Level);
        Assert.Equal("boom from an IPI", entry.Exception?.Message);
        Assert.Contains("CPU 1", entry.Message);
        Assert.Contains(Runtime(logs), e => e.EventId.Id == 1 && e.EventId.Name == "RuntimeStarted");
        Assert.Contains(Runtime(logs), e => e.EventId.Id == 4 && e.EventId.Name == "RuntimeStopped");
    }

    [Fact]
    public async Task Stop_drains_work_accepted_before_it()
    {
        using IHost host = Build((s, _) => s.AddPerCpu(o => { o.CpuCount = 2; o.StallThreshold = TimeSpan.Zero; }));
        await host.StartAsync().WithHangDetector();
        var runtime = host.Services.GetRequiredService<CpuRuntime>();

        using var release = new ManualResetEventSlim();
        TestUtil.Block(runtime[0], release);          // everything below queues behind the blocked function
        var ran = new long[1];
        const int Messages = 1000;
        for (int i = 0; i < Messages; i++)
            runtime[i % 2].Send(static (o, _) => Interlocked.Increment(ref ((long[])o!)[0]), ran);

        Task stop = host.StopAsync();
        Assert.True(SpinWait.SpinUntil(() => runtime.IsDisposed, TestUtil.Hang), "disposal never began");
        Assert.True(Volatile.Read(ref ran[0]) < Messages); // CPU 0's half still waits behind the blocked function
        release.Set();
        await stop.WithHangDetector();

        Assert.Equal(Messages, Volatile.Read(ref ran[0]));
        Assert.True(runtime.IsDisposed);
    }

    [Fact]
    public async Task Shutdown_timeout_abandons_disposal_with_a_warning()
    {
        var logs = new RecordingLoggerProvider();
        using IHost host = Build((s, _) => s.AddPerCpu(o => { o.CpuCount = 2; o.StallThreshold = TimeSpan.Zero; }), logs);
        await host.StartAsync().WithHangDetector();
        var runtime = host.Services.GetRequiredService<CpuRuntime>();

        using var release = new ManualResetEventSlim();
        TestUtil.Block(runtime[0], release);
        try
        {
            // An already-cancelled token is a shutdown timeout that has already ended: disposal cannot have finished.
            await host.StopAsync(new CancellationToken(canceled: true)).WithHangDetector();
            RecordingLoggerProvider.Entry entry = Assert.Single(Runtime(logs), e => e.EventId.Id == 5);
            Assert.Equal(LogLevel.Warning, entry.Level);
            Assert.Contains("still draining", entry.Message);
            Assert.DoesNotContain(Runtime(logs), e => e.EventId.Id == 4);
        }
        finally
        {
            release.Set();
        }
        await runtime.DisposeAsync().AsTask().WithHangDetector(); // the abandoned disposal still finishes once the CPU is free
    }
}
