using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace PerCpu.Kv.Tests;

/// <summary>percpu-kv as its own process (for kill -9, and for more sockets than one process may hold).</summary>
internal static partial class KvProcess
{
    [GeneratedRegex(@"listening on ([0-9.]+):(\d+)")]
    private static partial Regex ListeningLine();

    /// <summary>Starts the program on a free port with two unpinned CPUs and <paramref name="args"/>; returns once it listens.</summary>
    public static Process Start(ITestOutputHelper output, out int port, params string[] args)
    {
        string dll = typeof(KvServer).Assembly.Location;
        string dotnet = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        var psi = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in new[] { dll, "--port", "0", "--cpus", "2", "--no-pin" }.Concat(args)) psi.ArgumentList.Add(a);
        Process process = Process.Start(psi)!;
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data != null) Write(output, "server stderr: " + e.Data);
        };
        process.BeginErrorReadLine();
        while (true)
        {
            string? line = process.StandardOutput.ReadLine() ?? throw new Xunit.Sdk.XunitException("percpu-kv exited before it listened");
            Write(output, "server: " + line);
            Match m = ListeningLine().Match(line);
            if (m.Success)
            {
                port = int.Parse(m.Groups[2].Value);
                // Keep draining its log so that it never blocks on a full pipe.
                _ = Task.Run(() =>
                {
                    while (process.StandardOutput.ReadLine() is { } more) Write(output, "server: " + more);
                });
                return process;
            }
        }
    }

    private static void Write(ITestOutputHelper output, string line)
    {
        try
        {
            output.WriteLine(line);
        }
        catch (InvalidOperationException)
        {
            // the test has finished; the server's last words go nowhere
        }
    }
}
