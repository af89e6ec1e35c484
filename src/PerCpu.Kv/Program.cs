using System.Net;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

// percpu-kv: dotnet run --project src/PerCpu.Kv -- --port 6379 --cpus 2 [--bind 127.0.0.1] [--dir DIR]
//            [--appendfsync always|everysec|no] [--maxclients N] [--no-pin] [--transport percpu|socket] [--cross-shard invoke|send]
return await PerCpu.Kv.KvProgram.RunAsync(args);

namespace PerCpu.Kv
{
    /// <summary>The percpu-kv program: this project's entry point, and the <c>percpu kv</c> command of the percpu tool.</summary>
    public static class KvProgram
    {
        /// <summary>
        /// Runs the server with command-line <paramref name="args"/> (see <c>--help</c>) until Ctrl+C or SIGTERM, then shuts
        /// it down cleanly. Returns the exit code: 0 after a clean stop or help, 1 when it cannot listen, 2 for bad arguments.
        /// </summary>
        public static async Task<int> RunAsync(string[] args)
        {
            KvServerOptions options;
            try
            {
                options = KvArguments.Parse(args);
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine(e.Message);
                Console.Error.WriteLine(KvArguments.Usage);
                return 2;
            }
            if (options == null)
            {
                Console.WriteLine(KvArguments.Usage);
                return 0;
            }

            using ILoggerFactory loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
            }));
            options.LoggerFactory = loggerFactory;
            ILogger log = loggerFactory.CreateLogger("percpu-kv");

            KvServer server;
            try
            {
                server = await KvServer.StartAsync(options);
            }
            catch (System.Net.Sockets.SocketException e)
            {
                log.LogCritical("Cannot listen on {Address}:{Port}: {Message}. Pick another port with --port or stop what uses it.", options.Address, options.Port, e.Message);
                return 1;
            }

            var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Console.CancelKeyPress += (_, e) =>
            {
                e.Cancel = true; // shut down cleanly instead of dying
                stop.TrySetResult();
            };
            using PosixSignalRegistration term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
            {
                c.Cancel = true;
                stop.TrySetResult();
            });
            await stop.Task;
            await server.DisposeAsync();
            return 0;
        }
    }

    /// <summary>The command line of percpu-kv.</summary>
    internal static class KvArguments
    {
        /// <summary>What the program accepts.</summary>
        public const string Usage = """
            usage: percpu-kv [--port N] [--bind ADDRESS] [--cpus N] [--dir DIRECTORY] [--appendfsync always|everysec|no] [--maxclients N] [--no-pin] [--transport percpu|socket] [--cross-shard invoke|send]
              --port         TCP port (default 6379; 0 picks a free one)
              --bind         address to listen on (default 127.0.0.1)
              --cpus         CPUs, one shard each (default: all processors)
              --dir          directory of the append-only files (default: none, memory only)
              --appendfsync  when writes are acknowledged: always (after fsync), everysec (default), no
              --maxclients   most clients at once (default 10000)
              --no-pin       do not pin the CPU threads to cores
              --transport    percpu (PerCpu's per-CPU epoll sockets, default) or socket (System.Net.Sockets, completions posted to the CPU)
              --cross-shard  invoke (InvokeAsync, default) or send (a Send and a reply Send) for commands on other CPUs' shards
            """;

        /// <summary>Parses <paramref name="args"/>; null when help was asked for.</summary>
        /// <exception cref="ArgumentException">An argument is unknown or malformed (the message says which).</exception>
        public static KvServerOptions Parse(string[] args)
        {
            var o = new KvServerOptions();
            for (int i = 0; i < args.Length; i++)
            {
                string a = args[i];
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value.");
                int Int()
                {
                    string v = Value();
                    return int.TryParse(v, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n)
                        ? n : throw new ArgumentException($"{a} takes a whole number, not '{v}'.");
                }
                switch (a)
                {
                    case "--port": o.Port = Int(); break;
                    case "--cpus": o.Cpus = Int(); break;
                    case "--maxclients": o.MaxClients = Int(); break;
                    case "--dir": o.Directory = Value(); break;
                    case "--no-pin": o.PinThreads = false; break;
                    case "--transport":
                    {
                        string v = Value();
                        o.Transport = v.ToLowerInvariant() switch
                        {
                            "percpu" => KvTransport.PerCpu,
                            "socket" => KvTransport.Socket,
                            _ => throw new ArgumentException($"--transport takes percpu or socket, not '{v}'."),
                        };
                        break;
                    }
                    case "--cross-shard":
                    {
                        string v = Value();
                        o.CrossShardCalls = v.ToLowerInvariant() switch
                        {
                            "invoke" => CrossShardCalls.InvokeAsync,
                            "send" => CrossShardCalls.SendReply,
                            _ => throw new ArgumentException($"--cross-shard takes invoke or send, not '{v}'."),
                        };
                        break;
                    }
                    case "--bind":
                    {
                        string v = Value();
                        o.Address = IPAddress.TryParse(v, out IPAddress? ip) ? ip : throw new ArgumentException($"--bind takes an IP address, not '{v}'.");
                        break;
                    }
                    case "--appendfsync":
                    {
                        string v = Value();
                        o.AppendFsync = v.ToLowerInvariant() switch
                        {
                            "always" => AppendFsync.Always,
                            "everysec" => AppendFsync.EverySec,
                            "no" => AppendFsync.No,
                            _ => throw new ArgumentException($"--appendfsync takes always, everysec or no, not '{v}'."),
                        };
                        break;
                    }
                    case "-h" or "--help": return null!;
                    default: throw new ArgumentException($"Unknown argument '{a}'.");
                }
            }
            o.Validate();
            return o;
        }
    }
}
