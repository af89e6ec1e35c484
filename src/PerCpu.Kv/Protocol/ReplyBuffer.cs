using System.Buffers;
using System.Text;

namespace PerCpu.Kv.Protocol;

/// <summary>
/// A growable byte buffer that RESP2 replies are written into. One per connection (the batch's output) and one per
/// connection and shard (the replies a shard wrote for that connection's commands). Grows by doubling through the
/// shared array pool and is trimmed back after an unusually large batch, so steady state allocates nothing.
/// </summary>
internal sealed class ReplyBuffer
{
    /// <summary>The size a buffer starts at and is trimmed back to.</summary>
    public const int InitialSize = 16 * 1024;

    private static ReadOnlySpan<byte> Crlf => "\r\n"u8;

    /// <summary>The bytes; valid up to <see cref="Length"/>.</summary>
    public byte[] Buffer = BufferPool.Rent(InitialSize);

    /// <summary>Bytes written.</summary>
    public int Length;

    /// <summary>The written bytes.</summary>
    public ReadOnlySpan<byte> Written => new(Buffer, 0, Length);

    /// <summary>Forgets what was written; gives a buffer grown past 1 MB back to the pool.</summary>
    public void Reset()
    {
        Length = 0;
        if (Buffer.Length > 1024 * 1024)
        {
            BufferPool.Return(Buffer);
            Buffer = BufferPool.Rent(InitialSize);
        }
    }

    /// <summary>Returns the buffer to the pool (the connection is closed).</summary>
    public void Release()
    {
        byte[] b = Buffer;
        Buffer = [];
        Length = 0;
        BufferPool.Return(b);
    }

    /// <summary>A span of at least <paramref name="size"/> free bytes at the end; <see cref="Advance"/> commits them.</summary>
    public Span<byte> GetSpan(int size)
    {
        if (Buffer.Length - Length < size) Grow(size);
        return new Span<byte>(Buffer, Length, Buffer.Length - Length);
    }

    /// <summary>Commits <paramref name="count"/> bytes written into the last <see cref="GetSpan"/>.</summary>
    public void Advance(int count) => Length += count;

    private void Grow(int size)
    {
        long want = Math.Max((long)Buffer.Length * 2, (long)Length + size);
        if (want > Array.MaxLength) want = (long)Length + size;
        byte[] bigger = BufferPool.Rent((int)want);
        Buffer.AsSpan(0, Length).CopyTo(bigger);
        BufferPool.Return(Buffer);
        Buffer = bigger;
    }

    /// <summary>Appends raw bytes (an already encoded reply).</summary>
    public void Raw(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(GetSpan(bytes.Length));
        Length += bytes.Length;
    }

    /// <summary>A simple string: <c>+text</c>.</summary>
    public void Simple(ReadOnlySpan<byte> text)
    {
        Span<byte> s = GetSpan(text.Length + 3);
        s[0] = (byte)'+';
        text.CopyTo(s.Slice(1));
        Crlf.CopyTo(s.Slice(1 + text.Length));
        Length += text.Length + 3;
    }

    /// <summary><c>+OK</c>.</summary>
    public void Ok() => Raw("+OK\r\n"u8);

    /// <summary>The null bulk string <c>$-1</c>.</summary>
    public void Null() => Raw("$-1\r\n"u8);

    /// <summary>The null array <c>*-1</c>.</summary>
    public void NullArray() => Raw("*-1\r\n"u8);

    /// <summary>An error: <paramref name="text"/> must start with its code (ERR, WRONGTYPE, …).</summary>
    public void Error(ReadOnlySpan<byte> text)
    {
        Span<byte> s = GetSpan(text.Length + 3);
        s[0] = (byte)'-';
        text.CopyTo(s.Slice(1));
        Crlf.CopyTo(s.Slice(1 + text.Length));
        Length += text.Length + 3;
    }

    /// <summary>An error from a string (rare paths: formatted messages).</summary>
    public void Error(string text)
    {
        int max = Encoding.UTF8.GetMaxByteCount(text.Length) + 3;
        Span<byte> s = GetSpan(max);
        s[0] = (byte)'-';
        int n = Encoding.UTF8.GetBytes(text, s.Slice(1));
        // Redis replaces newlines in error texts with spaces: an error is one line.
        for (int i = 1; i <= n; i++)
        {
            if (s[i] is (byte)'\r' or (byte)'\n') s[i] = (byte)' ';
        }
        Crlf.CopyTo(s.Slice(1 + n));
        Length += n + 3;
    }

    /// <summary>An integer: <c>:n</c>.</summary>
    public void Integer(long value) => Prefixed((byte)':', value);

    /// <summary>An array header: <c>*count</c>.</summary>
    public void ArrayHeader(long count) => Prefixed((byte)'*', count);

    /// <summary>A bulk string.</summary>
    public void Bulk(ReadOnlySpan<byte> value)
    {
        Span<byte> s = GetSpan(value.Length + 24);
        s[0] = (byte)'$';
        value.Length.TryFormat(s.Slice(1), out int n);
        int p = 1 + n;
        s[p++] = (byte)'\r';
        s[p++] = (byte)'\n';
        value.CopyTo(s.Slice(p));
        p += value.Length;
        s[p++] = (byte)'\r';
        s[p++] = (byte)'\n';
        Length += p;
    }

    /// <summary>A bulk string from text (rare paths: INFO, CONFIG).</summary>
    public void Bulk(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        Bulk(bytes);
    }

    /// <summary>An integer written as a bulk string (INCRBYFLOAT-style replies, CONFIG values).</summary>
    public void BulkInteger(long value)
    {
        Span<byte> digits = stackalloc byte[20];
        value.TryFormat(digits, out int n);
        Bulk(digits.Slice(0, n));
    }

    private void Prefixed(byte prefix, long value)
    {
        Span<byte> s = GetSpan(24);
        s[0] = prefix;
        value.TryFormat(s.Slice(1), out int n);
        s[1 + n] = (byte)'\r';
        s[2 + n] = (byte)'\n';
        Length += n + 3;
    }
}
