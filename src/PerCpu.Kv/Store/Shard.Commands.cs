using System.Text;
using PerCpu.Kv.Protocol;
using PerCpu.Kv.Server;

namespace PerCpu.Kv.Store;

// The key commands, with Redis 7.0's replies and error texts (checked against redis-server 7.0.15).
internal sealed partial class Shard
{
    internal static ReadOnlySpan<byte> WrongType => "WRONGTYPE Operation against a key holding the wrong kind of value"u8;
    internal static ReadOnlySpan<byte> NotInteger => "ERR value is not an integer or out of range"u8;
    internal static ReadOnlySpan<byte> SyntaxError => "ERR syntax error"u8;
    private static ReadOnlySpan<byte> Overflow => "ERR increment or decrement would overflow"u8;
    private static ReadOnlySpan<byte> NotPositive => "ERR value is out of range, must be positive"u8;
    private static ReadOnlySpan<byte> TooBig => "ERR string exceeds maximum allowed size (proto-max-bulk-len)"u8;

    private static bool Is(ReadOnlySpan<byte> arg, ReadOnlySpan<byte> upper) => Ascii.EqualsIgnoreCase(arg, upper);

    private void CountLookup(KvEntry? e)
    {
        if (e != null) Hits++;
        else Misses++;
    }

    private void Get(ref SubCommand s, ReplyBuffer r, long now)
    {
        KvEntry? e = Find(Arg(ref s, 1), now);
        CountLookup(e);
        if (e == null) r.Null();
        else if (e.Value is byte[] v) r.Bulk(v);
        else r.Error(WrongType);
    }

    /// <summary>One key of MGET: a value of another type reads as nil (no WRONGTYPE in MGET).</summary>
    private void MGetPiece(ref SubCommand s, ReplyBuffer r, long now)
    {
        KvEntry? e = Find(Arg(ref s, 0), now);
        CountLookup(e);
        if (e?.Value is byte[] v) r.Bulk(v);
        else r.Null();
    }

    private void Set(ref SubCommand s, ReplyBuffer r, long now)
    {
        bool nx = false, xx = false, get = false, keepTtl = false;
        int unit = 0; // 0 none, 1 EX, 2 PX, 3 EXAT, 4 PXAT
        int expireArg = -1;
        for (int j = 3; j < s.ArgCount; j++)
        {
            ReadOnlySpan<byte> o = Arg(ref s, j);
            bool hasNext = j + 1 < s.ArgCount;
            if (Is(o, "NX"u8) && !xx) nx = true;
            else if (Is(o, "XX"u8) && !nx) xx = true;
            else if (Is(o, "GET"u8)) get = true;
            else if (Is(o, "KEEPTTL"u8) && unit == 0) keepTtl = true;
            else if (unit == 0 && !keepTtl && hasNext && (Is(o, "EX"u8) || Is(o, "PX"u8) || Is(o, "EXAT"u8) || Is(o, "PXAT"u8)))
            {
                unit = Is(o, "EX"u8) ? 1 : Is(o, "PX"u8) ? 2 : Is(o, "EXAT"u8) ? 3 : 4;
                expireArg = ++j;
            }
            else
            {
                r.Error(SyntaxError);
                return;
            }
        }

        long at = 0;
        if (unit != 0)
        {
            if (!Number.TryParseInt64(Arg(ref s, expireArg), out long v))
            {
                r.Error(NotInteger);
                return;
            }
            bool seconds = unit is 1 or 3;
            long baseTime = unit <= 2 ? now : 0;
            if (v <= 0 || (seconds && v > long.MaxValue / 1000) || (seconds ? v * 1000 : v) > long.MaxValue - baseTime)
            {
                r.Error("ERR invalid expire time in 'set' command"u8);
                return;
            }
            at = (seconds ? v * 1000 : v) + baseTime;
        }

        ReadOnlySpan<byte> key = Arg(ref s, 1);
        KvEntry? e = Find(key, now);
        if (get)
        {
            if (e != null && e.Value is not byte[])
            {
                r.Error(WrongType);
                return;
            }
            if (e != null) r.Bulk((byte[])e.Value);
            else r.Null();
        }
        if ((nx && e != null) || (xx && e == null))
        {
            if (!get) r.Null();
            return;
        }
        e = SetString(key, e, Arg(ref s, 2));
        if (unit != 0) SetExpire(e, at);
        else if (!keepTtl) SetExpire(e, 0);
        LogString(e);
        // An absolute time already past (EXAT/PXAT): set, then expired at once, as Redis does.
        if (at != 0 && at <= now) Remove(e);
        if (!get) r.Ok();
    }

    private void GetSet(ref SubCommand s, ReplyBuffer r, long now)
    {
        ReadOnlySpan<byte> key = Arg(ref s, 1);
        KvEntry? e = Find(key, now);
        if (e != null && e.Value is not byte[])
        {
            r.Error(WrongType);
            return;
        }
        if (e != null) r.Bulk((byte[])e.Value);
        else r.Null();
        e = SetString(key, e, Arg(ref s, 2));
        SetExpire(e, 0);
        LogString(e);
    }

    private void GetDel(ref SubCommand s, ReplyBuffer r, long now)
    {
        KvEntry? e = Find(Arg(ref s, 1), now);
        CountLookup(e);
        if (e == null) r.Null();
        else if (e.Value is byte[] v)
        {
            r.Bulk(v);
            Remove(e);
            LogDel(e.Key);
        }
        else r.Error(WrongType);
    }

    private void SetNx(ref SubCommand s, ReplyBuffer r, long now)
    {
        ReadOnlySpan<byte> key = Arg(ref s, 1);
        if (Find(key, now) != null)
        {
            r.Integer(0);
            return;
        }
        LogString(SetString(key, null, Arg(ref s, 2)));
        r.Integer(1);
    }

    private void SetEx(ref SubCommand s, ReplyBuffer r, long now, long unitMs, string invalid)
    {
        if (!Number.TryParseInt64(Arg(ref s, 2), out long v))
        {
            r.Error(NotInteger);
            return;
        }
        if (v <= 0 || v > long.MaxValue / unitMs || v * unitMs > long.MaxValue - now)
        {
            r.Error(invalid);
            return;
        }
        ReadOnlySpan<byte> key = Arg(ref s, 1);
        KvEntry e = SetString(key, Find(key, now), Arg(ref s, 3));
        SetExpire(e, now + v * unitMs);
        LogString(e);
        r.Ok();
    }

    private void Append(ref SubCommand s, ReplyBuffer r, long now)
    {
        ReadOnlySpan<byte> key = Arg(ref s, 1);
        ReadOnlySpan<byte> add = Arg(ref s, 2);
        KvEntry? e = Find(key, now);
        if (e == null)
        {
            LogArgs(ref s);
            r.Integer(Insert(key, add.ToArray()) is { Value: byte[] v } ? v.Length : 0);
            return;
        }
        if (e.Value is not byte[] old)
        {
            r.Error(WrongType);
            return;
        }
        if ((long)old.Length + add.Length > RespParser.MaxBulkLength)
        {
            r.Error(TooBig);
            return;
        }
        var joined = new byte[old.Length + add.Length];
        old.CopyTo(joined, 0);
        add.CopyTo(joined.AsSpan(old.Length));
        e.Value = joined;
        LogArgs(ref s);
        r.Integer(joined.Length);
    }

    private void Strlen(ref SubCommand s, ReplyBuffer r, long now)
    {
        KvEntry? e = Find(Arg(ref s, 1), now);
        if (e == null) r.Integer(0);
        else if (e.Value is byte[] v) r.Integer(v.Length);
        else r.Error(WrongType);
    }

    private void IncrByArg(ref SubCommand s, ReplyBuffer r, long now, bool negate)
    {
        if (!Number.TryParseInt64(Arg(ref s, 2), out long delta))
        {
            r.Error(NotInteger);
            return;
        }
        if (negate)
        {
            if (delta == long.MinValue)
            {
                r.Error("ERR decrement would overflow"u8);
                return;
            }
            delta = -delta;
        }
        IncrBy(ref s, r, now, delta);
    }

    private void IncrBy(ref SubCommand s, ReplyBuffer r, long now, long delta)
    {
        ReadOnlySpan<byte> key = Arg(ref s, 1);
        KvEntry? e = Find(key, now);
        long value = 0;
        if (e != null)
        {
            if (e.Value is not byte[] old)
            {
                r.Error(WrongType);
                return;
            }
            if (!Number.TryParseInt64(old, out value))
            {
                r.Error(NotInteger);
                return;
            }
        }
        if ((delta < 0 && value < 0 && delta < long.MinValue - value) || (delta > 0 && value > 0 && delta > long.MaxValue - value))
        {
            r.Error(Overflow);
            return;
        }
        value += delta;
        Span<byte> digits = stackalloc byte[20];
        value.TryFormat(digits, out int n);
        // Keeps the key's expiry, as Redis's INCR does.
        LogString(SetString(key, e, digits.Slice(0, n)));
        r.Integer(value);
    }

    private void Expire(ref SubCommand s, ReplyBuffer r, long now, long baseTime, long unitMs, string invalid)
    {
        if (!Number.TryParseInt64(Arg(ref s, 2), out long when))
        {
            r.Error(NotInteger);
            return;
        }
        bool nx = false, xx = false, gt = false, lt = false;
        for (int j = 3; j < s.ArgCount; j++)
        {
            ReadOnlySpan<byte> o = Arg(ref s, j);
            if (Is(o, "NX"u8)) nx = true;
            else if (Is(o, "XX"u8)) xx = true;
            else if (Is(o, "GT"u8)) gt = true;
            else if (Is(o, "LT"u8)) lt = true;
            else
            {
                r.Error("ERR Unsupported option " + Encoding.UTF8.GetString(o));
                return;
            }
        }
        if (nx && (xx || gt || lt))
        {
            r.Error("ERR NX and XX, GT or LT options at the same time are not compatible"u8);
            return;
        }
        if (gt && lt)
        {
            r.Error("ERR GT and LT options at the same time are not compatible"u8);
            return;
        }
        if (unitMs != 1 && (when > long.MaxValue / unitMs || when < long.MinValue / unitMs))
        {
            r.Error(invalid);
            return;
        }
        when *= unitMs;
        if (when > long.MaxValue - baseTime)
        {
            r.Error(invalid);
            return;
        }
        when += baseTime;

        KvEntry? e = Find(Arg(ref s, 1), now);
        if (e == null)
        {
            r.Integer(0);
            return;
        }
        long current = e.ExpireAt;
        // No expiry counts as an infinite one for GT and LT.
        if ((nx && current != 0) || (xx && current == 0) || (gt && (current == 0 || when <= current)) || (lt && current != 0 && when >= current))
        {
            r.Integer(0);
            return;
        }
        if (when <= now)
        {
            Remove(e);
            LogDel(e.Key);
        }
        else
        {
            SetExpire(e, when);
            LogExpire(e);
        }
        r.Integer(1);
    }

    private void Ttl(ref SubCommand s, ReplyBuffer r, long now, bool seconds)
    {
        KvEntry? e = Find(Arg(ref s, 1), now);
        if (e == null) r.Integer(-2);
        else if (e.ExpireAt == 0) r.Integer(-1);
        else
        {
            long left = Math.Max(0, e.ExpireAt - now);
            r.Integer(seconds ? (left + 500) / 1000 : left);
        }
    }

    private void Persist(ref SubCommand s, ReplyBuffer r, long now)
    {
        KvEntry? e = Find(Arg(ref s, 1), now);
        if (e == null || e.ExpireAt == 0)
        {
            r.Integer(0);
            return;
        }
        SetExpire(e, 0);
        LogExpire(e);
        r.Integer(1);
    }

    private void Type(ref SubCommand s, ReplyBuffer r, long now)
    {
        KvEntry? e = Find(Arg(ref s, 1), now);
        if (e == null) r.Simple("none"u8);
        else if (e.Value is byte[]) r.Simple("string"u8);
        else r.Simple("list"u8);
    }

    private void Push(ref SubCommand s, ReplyBuffer r, long now, bool head)
    {
        ReadOnlySpan<byte> key = Arg(ref s, 1);
        KvEntry? e = Find(key, now);
        KvList list;
        if (e == null)
        {
            list = new KvList();
            Insert(key, list);
        }
        else if (e.Value is KvList l) list = l;
        else
        {
            r.Error(WrongType);
            return;
        }
        for (int j = 2; j < s.ArgCount; j++)
        {
            byte[] item = Arg(ref s, j).ToArray();
            if (head) list.PushHead(item);
            else list.PushTail(item);
        }
        LogArgs(ref s);
        r.Integer(list.Count);
    }

    private void Pop(ref SubCommand s, ReplyBuffer r, long now, bool head)
    {
        bool hasCount = s.ArgCount == 3;
        long count = 1;
        if (hasCount && (!Number.TryParseInt64(Arg(ref s, 2), out count) || count < 0))
        {
            r.Error(NotPositive);
            return;
        }
        if (s.ArgCount > 3)
        {
            r.Error(head ? "ERR wrong number of arguments for 'lpop' command" : "ERR wrong number of arguments for 'rpop' command");
            return;
        }
        KvEntry? e = Find(Arg(ref s, 1), now);
        if (e == null)
        {
            if (hasCount) r.NullArray();
            else r.Null();
            return;
        }
        if (e.Value is not KvList list)
        {
            r.Error(WrongType);
            return;
        }
        if (!hasCount) r.Bulk(head ? list.PopHead() : list.PopTail());
        else
        {
            long n = Math.Min(count, list.Count);
            r.ArrayHeader(n);
            for (long i = 0; i < n; i++) r.Bulk(head ? list.PopHead() : list.PopTail());
        }
        if (list.Count == 0) Remove(e);
        LogArgs(ref s);
    }

    private void LRange(ref SubCommand s, ReplyBuffer r, long now)
    {
        if (!Number.TryParseInt64(Arg(ref s, 2), out long start) || !Number.TryParseInt64(Arg(ref s, 3), out long end))
        {
            r.Error(NotInteger);
            return;
        }
        KvEntry? e = Find(Arg(ref s, 1), now);
        if (e == null)
        {
            r.ArrayHeader(0);
            return;
        }
        if (e.Value is not KvList list)
        {
            r.Error(WrongType);
            return;
        }
        long len = list.Count;
        if (start < 0) start += len;
        if (end < 0) end += len;
        if (start < 0) start = 0;
        if (start > end || start >= len)
        {
            r.ArrayHeader(0);
            return;
        }
        if (end >= len) end = len - 1;
        r.ArrayHeader(end - start + 1);
        for (long i = start; i <= end; i++) r.Bulk(list[(int)i]);
    }

    private void LLen(ref SubCommand s, ReplyBuffer r, long now)
    {
        KvEntry? e = Find(Arg(ref s, 1), now);
        if (e == null) r.Integer(0);
        else if (e.Value is KvList list) r.Integer(list.Count);
        else r.Error(WrongType);
    }

    /// <summary>KEYS on this shard: the matching live keys as bulk strings; N1 = how many.</summary>
    private void Keys(ref SubCommand s, ReplyBuffer r, long now)
    {
        ReadOnlySpan<byte> pattern = Arg(ref s, 1);
        bool all = pattern.Length == 1 && pattern[0] == '*';
        long n = 0;
        foreach (KeyValuePair<byte[], KvEntry> kv in _dict)
        {
            if (kv.Value.ExpireAt != 0 && kv.Value.ExpireAt <= now) continue;
            if (!all && !Glob.Match(pattern, kv.Key)) continue;
            r.Bulk(kv.Key);
            n++;
        }
        s.N1 = n;
    }

    /// <summary>
    /// SCAN on this shard: visit up to N2 entries after the first N1 (the cursor's position), reply the live ones that
    /// match. N1 becomes the next position, or -1 when the shard is done; N2 the number of keys replied. A key present
    /// for the whole scan is returned as long as the shard's table is not rehashed by deletions between calls.
    /// </summary>
    private void Scan(ref SubCommand s, ReplyBuffer r, long now)
    {
        bool hasPattern = s.ArgCount == 1;
        ReadOnlySpan<byte> pattern = hasPattern ? Arg(ref s, 0) : default;
        long skip = s.N1, budget = s.N2, index = 0, n = 0;
        bool done = true;
        foreach (KeyValuePair<byte[], KvEntry> kv in _dict)
        {
            if (index++ < skip) continue;
            if (budget-- <= 0)
            {
                done = false;
                index--;
                break;
            }
            if (kv.Value.ExpireAt != 0 && kv.Value.ExpireAt <= now) continue;
            if (hasPattern && !Glob.Match(pattern, kv.Key)) continue;
            if (s.TypeFilter != 0 && s.TypeFilter != (kv.Value.Value is byte[] ? 1 : 2)) continue;
            r.Bulk(kv.Key);
            n++;
        }
        s.N1 = done ? -1 : index;
        s.N2 = n;
    }
}
