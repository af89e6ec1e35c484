using System.Globalization;
using System.Net;
using System.Net.Sockets;
using PerCpu;
using PerCpu.Bench.Echo;
using PerCpu.Net;

// PerCpu echo server (bench/echo): each accepted connection is owned by one CPU (SO_REUSEPORT listener per CPU, the
// default) and runs one loop there: receive into a 64 KB buffer, send it back, until end of stream. Every await resumes
// on the owning CPU; nothing runs on the thread pool.
//
//   PerCpuEcho <port> [cpus = all] [pin | nopin] [idle: default | poll | <spin µs>] [message bytes = 32]
//
// Pinning: CPU i is pinned to the i-th core the process may use, so `taskset -c 1 PerCpuEcho 7100 1 pin` runs one CPU
// on core 1. Prints "ready ..." once listening, a "session" line per client run (EchoMonitor), and totals on SIGTERM.

if (args.Length < 1)
{
    Console.Error.WriteLine("usage: PerCpuEcho <port> [cpus] [pin|nopin] [default|poll|<idle spin µs>] [message bytes]");
    return 2;
}
int port = int.Parse(args[0], CultureInfo.InvariantCulture);
int cpus = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : Environment.ProcessorCount;
bool pin = args.Length <= 2 || args[2] != "nopin";
string idle = args.Length > 3 ? args[3] : "default";
int messageBytes = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 32;

var options = new CpuRuntimeOptions { CpuCount = cpus, PinThreads = pin };
if (idle == "poll") options.PollMode = true;
else if (idle != "default") options.IdleSpin = TimeSpan.FromMicroseconds(double.Parse(idle, CultureInfo.InvariantCulture));

await using CpuRuntime runtime = CpuRuntime.Start(options);
runtime.UnhandledException += (_, e) => Console.Error.WriteLine($"unhandled on CPU {e.Cpu.Id}: {e.Exception}");
// Stall reports and the like (they allocate their message: a run that shows bytes per request should show them too).
runtime.Warning += (_, e) => Console.Error.WriteLine($"warning on CPU {e.Cpu.Id}: {e.Message}");

// Bytes echoed per CPU, one cache line apart (index (id + 1) * 16): written by the owning CPU only, read racily.
var echoed = new long[(cpus + 2) * 16];
CpuListener listener = runtime.ListenTcp(new IPEndPoint(IPAddress.Loopback, port), async connection =>
{
    byte[] buffer = new byte[65536];
    int slot = (connection.Cpu.Id + 1) * 16;
    try
    {
        while (true)
        {
            int n = await connection.ReceiveAsync(buffer);
            if (n == 0) return;
            echoed[slot] += n;
            await connection.SendAsync(buffer.AsMemory(0, n));
        }
    }
    catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown)
    {
        // The load client exits with requests in flight, so its close resets the connection: the normal end of a run.
    }
});

var counters = new Func<long>[cpus];
for (int i = 0; i < cpus; i++)
{
    int slot = (i + 1) * 16;
    counters[i] = () => Volatile.Read(ref echoed[slot]);
}
new EchoMonitor("percpu", counters, () => listener.ConnectionCount, messageBytes).Start();

string cores = string.Join(',', runtime.Cpus.Select(c => c.PinnedCore));
Console.WriteLine($"percpu ready port={port} cpus={cpus} pinned={runtime.ThreadsPinned} cores={cores} idle={idle} gc={(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")}");

await EchoMonitor.WaitForStopAsync();
long total = 0;
for (int i = 0; i < cpus; i++) total += counters[i]();
Console.WriteLine($"percpu exit bytes={total} requests={total / messageBytes}");
await listener.DisposeAsync();
return 0;
