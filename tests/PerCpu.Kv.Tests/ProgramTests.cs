using System.Diagnostics;
using System.Net;
using Xunit.Abstractions;

namespace PerCpu.Kv.Tests;

/// <summary>The program: Ctrl+C (SIGINT) shuts it down cleanly, and bad arguments say what to do.</summary>
public sealed class ProgramTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("percpu-kv-prog-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task CtrlC_ClosesClients_FlushesTheLog_ExitsZero()
    {
        Process server = KvProcess.Start(output, out int port, "--dir", _dir, "--appendfsync", "no");
        using (var c = new RespClient(new IPEndPoint(IPAddress.Loopback, port)))
        {
            Assert.Equal("+OK\r\n", c.Call("SET", "survives", "ctrl-c"));
            using Process kill = Process.Start("kill", ["-INT", server.Id.ToString()])!;
            await kill.WaitForExitAsync();
            await server.WaitForExitAsync();
            Assert.Equal(0, server.ExitCode);
            Assert.True(c.IsClosedByServer());
        }
        Process again = KvProcess.Start(output, out int port2, "--dir", _dir);
        try
        {
            using var c = new RespClient(new IPEndPoint(IPAddress.Loopback, port2));
            Assert.Equal("$6\r\nctrl-c\r\n", c.Call("GET", "survives"));
        }
        finally
        {
            again.Kill(entireProcessTree: true);
            await again.WaitForExitAsync();
        }
    }

    [Theory]
    [InlineData("--port", "x", "--port takes a whole number, not 'x'.")]
    [InlineData("--appendfsync", "sometimes", "--appendfsync takes always, everysec or no, not 'sometimes'.")]
    [InlineData("--frobnicate", null, "Unknown argument '--frobnicate'.")]
    [InlineData("--port", "70000", "Port 70000 is not a TCP port")]
    public void BadArguments_SayWhatToDo(string option, string? value, string message)
    {
        string[] args = value == null ? [option] : [option, value];
        var e = Assert.ThrowsAny<ArgumentException>(() => KvArguments.Parse(args));
        Assert.Contains(message, e.Message);
    }
}
