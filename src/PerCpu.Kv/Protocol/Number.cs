namespace PerCpu.Kv.Protocol;

/// <summary>Integer parsing with Redis's rules (util.c string2ll), straight from the receive buffer.</summary>
internal static class Number
{
    /// <summary>
    /// Parses a decimal integer as Redis does: an optional '-', then digits with no leading zero (except "0" itself),
    /// no '+', no spaces, within the range of a 64-bit integer.
    /// </summary>
    public static bool TryParseInt64(ReadOnlySpan<byte> s, out long value)
    {
        value = 0;
        if (s.Length == 0 || s.Length > 20) return false;
        if (s.Length == 1 && s[0] == '0') return true;
        int i = 0;
        bool negative = false;
        if (s[0] == '-')
        {
            negative = true;
            i = 1;
            if (s.Length == 1) return false;
        }
        if (s[i] < '1' || s[i] > '9') return false;
        ulong v = 0;
        for (; i < s.Length; i++)
        {
            uint d = (uint)(s[i] - '0');
            if (d > 9) return false;
            if (v > (ulong.MaxValue - d) / 10) return false;
            v = v * 10 + d;
        }
        if (negative)
        {
            if (v > (ulong)long.MaxValue + 1) return false;
            value = (long)(0 - v);
        }
        else
        {
            if (v > long.MaxValue) return false;
            value = (long)v;
        }
        return true;
    }
}
