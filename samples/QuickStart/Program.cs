using PerCpu;

// Start one virtual CPU per core; each is a dedicated (pinned) thread that owns its data.
await using var runtime = CpuRuntime.Start(new CpuRuntimeOptions { CpuCount = Math.Max(2, Environment.ProcessorCount) });
Console.WriteLine($"{runtime.CpuCount} CPUs, threads pinned: {runtime.ThreadsPinned}");

// Per-CPU state: each counter is touched only by its own CPU, so it needs no lock.
var counters = new long[runtime.CpuCount];

// From CPU 0, send a million messages to CPU 1 through the IPI ring; then wait until the last one has run.
await runtime[0].InvokeAsync(() =>
{
    long seq = 0;
    for (int i = 0; i < 1_000_000; i++)
        seq = runtime[1].Send(static (state, _) => ((long[])state!)[Cpu.Current!.Id]++, counters);
    runtime[1].WaitFor(seq);
});

// Ask CPU 1 for its count: the call runs on CPU 1 and the result comes back here.
long onCpu1 = await runtime[1].InvokeAsync(() => counters[Cpu.Current!.Id]);
Console.WriteLine($"CPU 1 ran {onCpu1:N0} messages");

// Broadcast to every CPU, then wait until each has processed what we sent.
int n = runtime.SendToMask(runtime.AllCpus, static (state, _) => ((long[])state!)[Cpu.Current!.Id] += 1000, counters);
runtime.Synchronize();
Console.WriteLine($"broadcast reached {n} CPUs; counters: {string.Join(", ", counters)}");

CpuStatistics stats = runtime.GetStatistics();
Console.WriteLine($"sent {stats.Sent:N0}, received {stats.Received:N0}, fifo full {stats.FifoFull:N0}, wakes avoided {stats.Avoided:N0}, wakes sent {stats.WakesSent:N0}");
