namespace PerCpu.Kv.Protocol;

/// <summary>
/// An incremental RESP2 request parser with Redis's limits and error texts (networking.c: processMultibulkBuffer,
/// processInlineBuffer). It parses one command at a time out of the connection's receive buffer, recording argument
/// offsets instead of copying; a command split across reads is reported <see cref="ParseStatus.Incomplete"/> and parsed
/// again from its start when more bytes arrive (headers only are re-read, so a large bulk costs no rescans).
/// </summary>
internal static class RespParser
{
    /// <summary>Redis's PROTO_INLINE_MAX_SIZE: the longest inline command, and the longest count line.</summary>
    public const int MaxInlineSize = 64 * 1024;

    /// <summary>Redis's default proto-max-bulk-len (512 MB).</summary>
    public const long MaxBulkLength = 512L * 1024 * 1024;

    /// <summary>The most arguments in one command (Redis 6's bound; 7.0 accepts up to INT_MAX, which only invites abuse).</summary>
    public const int MaxMultibulkLength = 1024 * 1024;

    /// <summary>
    /// Parses the command that starts at <paramref name="pos"/> in <paramref name="buffer"/>. On Complete or Empty,
    /// <paramref name="pos"/> moves past it; on Complete its arguments are appended to <paramref name="args"/>. On
    /// Incomplete, nothing changes and <paramref name="needed"/> is how many bytes from <paramref name="pos"/> the
    /// command needs at least. On Error, <paramref name="error"/> is Redis's text (without "-ERR ").
    /// Inline commands with quotes are unescaped in place (the result is never longer than its source).
    /// </summary>
    public static ParseStatus Parse(Span<byte> buffer, ref int pos, ArgList args, out string? error, out int needed)
    {
        error = null;
        needed = buffer.Length - pos + 1;
        if (pos >= buffer.Length) return ParseStatus.Incomplete;
        return buffer[pos] == (byte)'*'
            ? ParseMultibulk(buffer, ref pos, args, ref error, ref needed)
            : ParseInline(buffer, ref pos, args, ref error);
    }

    private static ParseStatus ParseMultibulk(Span<byte> buffer, ref int pos, ArgList args, ref string? error, ref int needed)
    {
        int p = pos;
        int cr = buffer.Slice(p).IndexOf((byte)'\r');
        if (cr < 0 || p + cr + 1 >= buffer.Length)
        {
            if (buffer.Length - p > MaxInlineSize)
            {
                error = "Protocol error: too big mbulk count string";
                return ParseStatus.Error;
            }
            return ParseStatus.Incomplete;
        }
        cr += p;
        if (!Number.TryParseInt64(buffer.Slice(p + 1, cr - p - 1), out long count) || count > MaxMultibulkLength)
        {
            error = "Protocol error: invalid multibulk length";
            return ParseStatus.Error;
        }
        p = cr + 2;
        if (count <= 0)
        {
            pos = p;
            return ParseStatus.Empty;
        }

        int saved = args.Count;
        for (long i = 0; i < count; i++)
        {
            if (p >= buffer.Length) return Incomplete(args, saved, p - pos + 1, ref needed);
            if (buffer[p] != (byte)'$')
            {
                args.Count = saved;
                error = $"Protocol error: expected '$', got '{(char)buffer[p]}'";
                return ParseStatus.Error;
            }
            cr = buffer.Slice(p).IndexOf((byte)'\r');
            if (cr < 0 || p + cr + 1 >= buffer.Length)
            {
                if (buffer.Length - p > MaxInlineSize)
                {
                    args.Count = saved;
                    error = "Protocol error: too big bulk count string";
                    return ParseStatus.Error;
                }
                return Incomplete(args, saved, buffer.Length - pos + 1, ref needed);
            }
            cr += p;
            if (!Number.TryParseInt64(buffer.Slice(p + 1, cr - p - 1), out long length) || length < 0 || length > MaxBulkLength)
            {
                args.Count = saved;
                error = "Protocol error: invalid bulk length";
                return ParseStatus.Error;
            }
            long end = (long)cr + 2 + length + 2;
            if (end > buffer.Length)
            {
                // The whole bulk is needed in the buffer: report its size so that the caller grows the buffer once.
                return Incomplete(args, saved, (int)Math.Min(int.MaxValue, end - pos), ref needed);
            }
            // Like Redis, the two bytes after the bulk are skipped, not checked.
            args.Add(cr + 2, (int)length);
            p = (int)end;
        }
        pos = p;
        return ParseStatus.Complete;
    }

    private static ParseStatus Incomplete(ArgList args, int saved, int atLeast, ref int needed)
    {
        args.Count = saved;
        needed = atLeast;
        return ParseStatus.Incomplete;
    }

    private static ParseStatus ParseInline(Span<byte> buffer, ref int pos, ArgList args, ref string? error)
    {
        int p = pos;
        int nl = buffer.Slice(p).IndexOf((byte)'\n');
        if (nl < 0 || nl > MaxInlineSize)
        {
            if (buffer.Length - p > MaxInlineSize)
            {
                error = "Protocol error: too big inline request";
                return ParseStatus.Error;
            }
            return ParseStatus.Incomplete;
        }
        int end = p + nl;
        int next = end + 1;
        if (end > p && buffer[end - 1] == (byte)'\r') end--;

        int saved = args.Count;
        if (!SplitArgs(buffer, p, end, args))
        {
            args.Count = saved;
            error = "Protocol error: unbalanced quotes in request";
            return ParseStatus.Error;
        }
        pos = next;
        return args.Count == saved ? ParseStatus.Empty : ParseStatus.Complete;
    }

    /// <summary>Redis's sdssplitargs, unescaping into the buffer in place. False on unbalanced quotes.</summary>
    private static bool SplitArgs(Span<byte> b, int r, int end, ArgList args)
    {
        int w = r;
        while (true)
        {
            while (r < end && IsSpace(b[r])) r++;
            if (r >= end) return true;

            int start = w;
            bool inDouble = false, inSingle = false, done = false;
            while (!done)
            {
                byte c = r < end ? b[r] : (byte)0;
                if (inDouble)
                {
                    if (r >= end) return false;
                    if (c == '\\' && r + 3 < end && b[r + 1] == 'x' && IsHex(b[r + 2]) && IsHex(b[r + 3]))
                    {
                        b[w++] = (byte)(HexValue(b[r + 2]) * 16 + HexValue(b[r + 3]));
                        r += 3;
                    }
                    else if (c == '\\' && r + 1 < end)
                    {
                        r++;
                        b[w++] = b[r] switch
                        {
                            (byte)'n' => (byte)'\n',
                            (byte)'r' => (byte)'\r',
                            (byte)'t' => (byte)'\t',
                            (byte)'b' => (byte)'\b',
                            (byte)'a' => (byte)'\a',
                            byte other => other,
                        };
                    }
                    else if (c == '"')
                    {
                        // The closing quote must be followed by a space or nothing at all.
                        if (r + 1 < end && !IsSpace(b[r + 1])) return false;
                        done = true;
                    }
                    else b[w++] = c;
                }
                else if (inSingle)
                {
                    if (r >= end) return false;
                    if (c == '\\' && r + 1 < end && b[r + 1] == '\'')
                    {
                        r++;
                        b[w++] = (byte)'\'';
                    }
                    else if (c == '\'')
                    {
                        if (r + 1 < end && !IsSpace(b[r + 1])) return false;
                        done = true;
                    }
                    else b[w++] = c;
                }
                else
                {
                    switch (c)
                    {
                        case (byte)' ':
                        case (byte)'\n':
                        case (byte)'\r':
                        case (byte)'\t':
                        case 0 when r >= end:
                            done = true;
                            break;
                        case (byte)'"':
                            inDouble = true;
                            break;
                        case (byte)'\'':
                            inSingle = true;
                            break;
                        default:
                            b[w++] = c;
                            break;
                    }
                }
                if (r < end) r++;
            }
            args.Add(start, w - start);
            // Keep the write pointer one past the argument so that an argument never overwrites unread input.
            if (w < r) w = r;
        }
    }

    private static bool IsSpace(byte c) => c is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r' or (byte)'\v' or (byte)'\f';

    private static bool IsHex(byte c) => char.IsAsciiHexDigit((char)c);

    private static int HexValue(byte c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}
