using System.Text;

namespace PerCpu.Kv.Tests;

/// <summary>The RESP parser through real sockets: pipelining, split commands, inline commands, and bad input.</summary>
public sealed class ProtocolTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private RespClient Connect() => new(fixture.EndPoint);

    /// <summary>Another client still gets answers: bad input on one connection leaves the rest alone.</summary>
    private void AssertServerServesOthers()
    {
        using RespClient other = Connect();
        Assert.Equal("+PONG\r\n", other.Call("PING"));
        Assert.Equal("+OK\r\n", other.Call("SET", "alive", "yes"));
        Assert.Equal("$3\r\nyes\r\n", other.Call("GET", "alive"));
        Assert.Equal(0, fixture.Server.Runtime.GetStatistics().Errors);
    }

    [Fact]
    public void PipelinedBatch_RepliesInOrder()
    {
        using RespClient c = Connect();
        var batch = new List<byte>();
        for (int i = 0; i < 500; i++)
        {
            batch.AddRange(RespClient.Encode("SET", "p:" + i, i.ToString()));
            batch.AddRange(RespClient.Encode("GET", "p:" + i));
        }
        c.SendRaw(batch.ToArray());
        for (int i = 0; i < 500; i++)
        {
            Assert.Equal("+OK\r\n", c.ReadReply());
            Assert.Equal($"${i.ToString().Length}\r\n{i}\r\n", c.ReadReply());
        }
    }

    [Fact]
    public void CommandSplitAcrossReads_ByteByByte_IsParsedWhole()
    {
        using RespClient c = Connect();
        c.Socket.NoDelay = true;
        byte[] request = RespClient.Encode("SET", "split", "a value split byte by byte");
        foreach (byte b in request) c.SendRaw([b]);
        Assert.Equal("+OK\r\n", c.ReadReply());
        Assert.Equal("$26\r\na value split byte by byte\r\n", c.Call("GET", "split"));
    }

    [Fact]
    public void LargeBulk_GrowsTheBuffer()
    {
        using RespClient c = Connect();
        string big = new('x', 3 * 1024 * 1024);
        Assert.Equal("+OK\r\n", c.Call("SET", "big", big));
        Assert.Equal($"${big.Length}\r\n{big}\r\n", c.Call("GET", "big"));
        Assert.Equal($":{big.Length}\r\n", c.Call("STRLEN", "big"));
    }

    [Fact]
    public void InlineCommands_WithQuotesAndEscapes()
    {
        using RespClient c = Connect();
        c.SendRaw("PING\r\n");
        Assert.Equal("+PONG\r\n", c.ReadReply());
        c.SendRaw("SET inl \"a b\\x41\\n\"\r\n");
        Assert.Equal("+OK\r\n", c.ReadReply());
        Assert.Equal("$5\r\na bA\n\r\n", c.Call("GET", "inl"));
        c.SendRaw("set 'q' 'it\\'s'\nget q\n   \r\n");
        Assert.Equal("+OK\r\n", c.ReadReply());
        Assert.Equal("$4\r\nit's\r\n", c.ReadReply());
    }

    [Fact]
    public void UnbalancedQuotes_ErrorThenClose()
    {
        using RespClient c = Connect();
        c.SendRaw("PING\r\nGET \"a\r\n");
        Assert.Equal("+PONG\r\n", c.ReadReply());
        Assert.Equal("-ERR Protocol error: unbalanced quotes in request\r\n", c.ReadReply());
        Assert.True(c.IsClosedByServer());
        AssertServerServesOthers();
    }

    [Fact]
    public void ExpectedDollar_ErrorThenClose()
    {
        using RespClient c = Connect();
        c.SendRaw("*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\nx\r\n");
        Assert.Equal("+PONG\r\n", c.ReadReply());
        Assert.Equal("-ERR Protocol error: expected '$', got 'x'\r\n", c.ReadReply());
        Assert.True(c.IsClosedByServer());
        AssertServerServesOthers();
    }

    [Fact]
    public void InvalidMultibulkLength_ErrorThenClose()
    {
        using RespClient c = Connect();
        c.SendRaw("*abc\r\n");
        Assert.Equal("-ERR Protocol error: invalid multibulk length\r\n", c.ReadReply());
        Assert.True(c.IsClosedByServer());
        AssertServerServesOthers();
    }

    [Fact]
    public void BulkLengthAboveTheLimit_ErrorThenClose()
    {
        using RespClient c = Connect();
        // 512 MB + 1: one byte above proto-max-bulk-len.
        c.SendRaw("*2\r\n$3\r\nGET\r\n$536870913\r\n");
        Assert.Equal("-ERR Protocol error: invalid bulk length\r\n", c.ReadReply());
        Assert.True(c.IsClosedByServer());
        AssertServerServesOthers();
    }

    [Fact]
    public void OneMegabyteInlineCommand_ErrorThenClose()
    {
        using RespClient c = Connect();
        byte[] inline = Encoding.ASCII.GetBytes("SET k " + new string('a', 1024 * 1024) + "\r\n");
        try
        {
            c.SendRaw(inline);
        }
        catch (System.Net.Sockets.SocketException)
        {
            // the server may close while the rest is still on its way: the reply was sent before the close
        }
        Assert.Equal("-ERR Protocol error: too big inline request\r\n", c.ReadReply());
        Assert.True(c.IsClosedByServer());
        AssertServerServesOthers();
    }

    [Fact]
    public void HugeCountLine_ErrorThenClose()
    {
        using RespClient c = Connect();
        c.SendRaw("*" + new string('1', 70 * 1024));
        Assert.Equal("-ERR Protocol error: too big mbulk count string\r\n", c.ReadReply());
        Assert.True(c.IsClosedByServer());
        AssertServerServesOthers();
    }

    [Fact]
    public void HalfACommandThenDisconnect_OthersUnaffected()
    {
        for (int i = 0; i < 20; i++)
        {
            using RespClient c = Connect();
            c.SendRaw("*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$100\r\nonly part of the value");
        }
        using (RespClient c = Connect())
        {
            // A large bulk announced, a little of it sent: the buffer grew for it, then the client vanished.
            c.SendRaw("*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$50000000\r\nabc");
        }
        AssertServerServesOthers();
        using RespClient check = Connect();
        Assert.Equal("$-1\r\n", check.Call("GET", "half"));
    }

    [Fact]
    public void EmptyRequests_AreSkipped()
    {
        using RespClient c = Connect();
        c.SendRaw("*0\r\n*-1\r\n\r\n\r\nPING\r\n");
        Assert.Equal("+PONG\r\n", c.ReadReply());
    }

    [Fact]
    public void Quit_RepliesOkThenCloses_IgnoringTheRest()
    {
        using RespClient c = Connect();
        c.SendRaw("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n*3\r\n$3\r\nSET\r\n$6\r\nafterq\r\n$1\r\nx\r\n");
        Assert.Equal("+PONG\r\n", c.ReadReply());
        Assert.Equal("+OK\r\n", c.ReadReply());
        Assert.True(c.IsClosedByServer());
        using RespClient check = Connect();
        Assert.Equal("$-1\r\n", check.Call("GET", "afterq"));
    }
}
