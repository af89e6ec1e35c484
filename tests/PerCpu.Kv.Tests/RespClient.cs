using System.Net;
using System.Net.Sockets;
using System.Text;

namespace PerCpu.Kv.Tests;

/// <summary>
/// A raw RESP client for tests: sends bytes exactly as given and reads replies back as their exact wire text
/// (so a test checks the reply's type as well as its value: "$-1\r\n" is not "*-1\r\n").
/// </summary>
internal sealed class RespClient : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start, _end;

    public RespClient(IPEndPoint endPoint)
    {
        _socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        _socket.Connect(endPoint);
        // A hang detector for one reply, not a deadline on a workload: a reply that never comes is a bug.
        _socket.ReceiveTimeout = 60_000;
    }

    public Socket Socket => _socket;

    /// <summary>Encodes a command as a RESP multibulk request.</summary>
    public static byte[] Encode(params string[] args)
    {
        var sb = new StringBuilder();
        sb.Append('*').Append(args.Length).Append("\r\n");
        foreach (string a in args) sb.Append('$').Append(Encoding.UTF8.GetByteCount(a)).Append("\r\n").Append(a).Append("\r\n");
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    public void SendRaw(string raw) => SendRaw(Encoding.UTF8.GetBytes(raw));

    public void SendRaw(ReadOnlySpan<byte> raw)
    {
        while (raw.Length > 0) raw = raw.Slice(_socket.Send(raw));
    }

    /// <summary>Sends one command and returns its reply's wire text.</summary>
    public string Call(params string[] args)
    {
        SendRaw(Encode(args));
        return ReadReply();
    }

    /// <summary>Reads one whole reply (nested arrays included) and returns its wire text.</summary>
    public string ReadReply()
    {
        var sb = new StringBuilder();
        ReadValue(sb);
        return sb.ToString();
    }

    /// <summary>True if the server closed the connection (after any replies still unread).</summary>
    public bool IsClosedByServer()
    {
        if (_start < _end) return false;
        try
        {
            return _socket.Receive(_buffer) == 0;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return true;
        }
    }

    private void ReadValue(StringBuilder sb)
    {
        string line = ReadLine();
        sb.Append(line).Append("\r\n");
        char type = line[0];
        if (type is '+' or '-' or ':') return;
        long n = long.Parse(line.AsSpan(1));
        if (type == '$')
        {
            if (n < 0) return;
            sb.Append(Encoding.UTF8.GetString(ReadBytes((int)n + 2)));
            return;
        }
        if (type != '*') throw new InvalidDataException($"Not a RESP reply: '{line}'");
        for (long i = 0; i < n; i++) ReadValue(sb);
    }

    private string ReadLine()
    {
        while (true)
        {
            int nl = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (nl > 0 && _buffer[nl - 1] == '\r')
            {
                string line = Encoding.UTF8.GetString(_buffer, _start, nl - 1 - _start);
                _start = nl + 1;
                return line;
            }
            Fill();
        }
    }

    private byte[] ReadBytes(int count)
    {
        var result = new byte[count];
        int got = 0;
        while (got < count)
        {
            if (_start == _end) Fill();
            int take = Math.Min(count - got, _end - _start);
            Buffer.BlockCopy(_buffer, _start, result, got, take);
            _start += take;
            got += take;
        }
        return result;
    }

    private void Fill()
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length) throw new InvalidDataException("reply line longer than the test client's buffer");
        int n = _socket.Receive(_buffer, _end, _buffer.Length - _end, SocketFlags.None);
        if (n == 0) throw new EndOfStreamException("the server closed the connection");
        _end += n;
    }

    public void Dispose() => _socket.Dispose();
}
