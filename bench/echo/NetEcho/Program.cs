using System.Globalization;
using System.Net;
using System.Net.Sockets;
using PerCpu.Bench.Echo;

// .NET async-socket echo server: one async loop per connection on the thread pool (Kestrel's default transport shape).
// The anchors' server (/work/shared/anchors/echo/net/Program.cs, 2026-12-01) line for line, plus what bench/echo needs to
// report: one Interlocked.Add per receive (bytes echoed), an open-connection count (EchoMonitor), a try/finally that
// closes a reset connection and counts it closed (the anchors' loop let the reset escape), and a stop on SIGTERM.
//
//   NetEcho <port> [message bytes = 32]

int port = int.Parse(args[0], CultureInfo.InvariantCulture);
int messageBytes = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 32;
long echoed = 0;
int open = 0;
new EchoMonitor("net", [() => Volatile.Read(ref echoed)], () => Volatile.Read(ref open), messageBytes).Start();

var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
l.Bind(new IPEndPoint(IPAddress.Loopback, port)); l.Listen(1024);
Console.WriteLine($"net ready port={port} gc={(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")}");
Task stop = EchoMonitor.WaitForStopAsync();
_ = Task.Run(async () =>
{
    while (true)
    {
        var c = await l.AcceptAsync();
        c.NoDelay = true;
        Interlocked.Increment(ref open);
        _ = Task.Run(async () =>
        {
            try
            {
                var buf = new byte[65536];
                while (true)
                {
                    int n = await c.ReceiveAsync(buf.AsMemory(), SocketFlags.None);
                    if (n == 0) break;
                    Interlocked.Add(ref echoed, n);
                    int off = 0;
                    while (off < n) off += await c.SendAsync(buf.AsMemory(off, n - off), SocketFlags.None);
                }
            }
            catch (SocketException)
            {
                // The load client exits with requests in flight: its close resets the connection.
            }
            finally
            {
                c.Dispose();
                Interlocked.Decrement(ref open);
            }
        });
    }
});
await stop;
Console.WriteLine($"net exit bytes={Volatile.Read(ref echoed)} requests={Volatile.Read(ref echoed) / messageBytes}");
return 0;
