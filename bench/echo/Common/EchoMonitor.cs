using System.Diagnostics;
using System.Runtime.InteropServices;

namespace PerCpu.Bench.Echo;

/// <summary>
/// Samples an echo server every 100 ms on a thread of its own and, each time the connections drop back to 0 (one
/// client run), prints one line about the steady part of that run: the samples taken while the connection count was
/// at its peak, minus the first and the last (ramp-up and tear-down). The line gives requests per second as the
/// server counted them (bytes echoed / message size), bytes allocated per request (<see cref="GC.GetTotalAllocatedBytes(bool)"/>
/// with precise = true, all threads), server CPU time per request (<see cref="Environment.CpuUsage"/>), gen-0 GCs,
/// methods JIT-compiled in the window (non-zero: tiering was still going on, the run was not warm), and the per-CPU
/// split of the requests. The sampling loop allocates nothing (preallocated arrays), so it does not
/// pollute the allocation figure; printing happens after the window closed.
/// </summary>
internal sealed class EchoMonitor
{
    private const int MaxSamples = 4096;
    private const int IntervalMs = 100;

    private readonly Func<long>[] _bytes;
    private readonly Func<int> _connections;
    private readonly int _messageBytes;
    private readonly string _name;

    private readonly long[] _time = new long[MaxSamples], _allocated = new long[MaxSamples], _cpuTicks = new long[MaxSamples];
    private readonly int[] _gen0 = new int[MaxSamples];
    private readonly long[] _jitted = new long[MaxSamples];
    private readonly long[,] _perCpu;

    /// <param name="name">Printed at the start of each line.</param>
    /// <param name="bytes">One counter of bytes echoed per CPU (or one for the whole server); read racily.</param>
    /// <param name="connections">Connections open now.</param>
    /// <param name="messageBytes">Bytes per request (the client's message size).</param>
    public EchoMonitor(string name, Func<long>[] bytes, Func<int> connections, int messageBytes)
    {
        _name = name;
        _bytes = bytes;
        _connections = connections;
        _messageBytes = messageBytes;
        _perCpu = new long[MaxSamples, bytes.Length];
    }

    /// <summary>Starts the sampling thread (a background thread: it dies with the process).</summary>
    public void Start() => new Thread(Run) { IsBackground = true, Name = "echo-monitor" }.Start();

    private void Run()
    {
        bool inSession = false;
        int peak = 0, count = 0;
        while (true)
        {
            Thread.Sleep(IntervalMs);
            int connections = _connections();
            if (connections > 0)
            {
                if (!inSession || connections > peak)
                {
                    inSession = true;
                    peak = connections;
                    count = 0; // a new peak: the window starts again
                }
                if (connections == peak && count < MaxSamples) Take(count++);
            }
            else if (inSession)
            {
                inSession = false;
                Report(peak, count);
                peak = 0;
                count = 0;
            }
        }
    }

    private void Take(int i)
    {
        _time[i] = Stopwatch.GetTimestamp();
        _allocated[i] = GC.GetTotalAllocatedBytes(precise: true);
        _cpuTicks[i] = Environment.CpuUsage.TotalTime.Ticks;
        _gen0[i] = GC.CollectionCount(0);
        _jitted[i] = System.Runtime.JitInfo.GetCompiledMethodCount();
        for (int c = 0; c < _bytes.Length; c++) _perCpu[i, c] = _bytes[c]();
    }

    private void Report(int peak, int count)
    {
        if (count < 4)
        {
            Console.WriteLine($"{_name} session conns={peak} samples={count} (too short to judge)");
            return;
        }
        int a = 1, b = count - 2; // drop the first and the last sample
        double seconds = Stopwatch.GetElapsedTime(_time[a], _time[b]).TotalSeconds;
        long bytes = 0;
        var split = new string[_bytes.Length];
        for (int c = 0; c < _bytes.Length; c++)
        {
            long d = _perCpu[b, c] - _perCpu[a, c];
            bytes += d;
            split[c] = (d / _messageBytes / seconds).ToString("F0");
        }
        double requests = (double)bytes / _messageBytes;
        long allocated = _allocated[b] - _allocated[a];
        double cpuSeconds = TimeSpan.FromTicks(_cpuTicks[b] - _cpuTicks[a]).TotalSeconds;
        Console.WriteLine(
            $"{_name} session conns={peak} window_s={seconds:F2} req_per_s={requests / seconds:F0} " +
            $"alloc_B_per_req={(requests > 0 ? allocated / requests : double.NaN):F4} alloc_B={allocated} " +
            $"cpu_us_per_req={(requests > 0 ? cpuSeconds * 1e6 / requests : double.NaN):F2} cpu_share={cpuSeconds / seconds:F2} " +
            $"gen0={_gen0[b] - _gen0[a]} jitted={_jitted[b] - _jitted[a]} per_cpu_req_per_s={string.Join('/', split)}");
    }

    /// <summary>Waits for SIGTERM or SIGINT (what run.sh sends to stop a server).</summary>
    public static Task WaitForStopAsync()
    {
        var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Handler(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.TrySetResult();
        }
        // Kept alive by the task's closure for the life of the program.
        var registrations = new[] { PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handler), PosixSignalRegistration.Create(PosixSignal.SIGINT, Handler) };
        return stop.Task.ContinueWith(_ => GC.KeepAlive(registrations), TaskScheduler.Default);
    }
}
