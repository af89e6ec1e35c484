namespace PerCpu.Kv.Store;

/// <summary>Redis's glob-style pattern match (util.c stringmatchlen): <c>* ? [abc] [^a] [a-z] \x</c>.</summary>
internal static class Glob
{
    /// <summary>True if <paramref name="s"/> matches <paramref name="pattern"/> (case-sensitive).</summary>
    public static bool Match(ReadOnlySpan<byte> pattern, ReadOnlySpan<byte> s, int depth = 0)
    {
        // Bound the recursion of many stars (Redis does the same since 7.0: a pattern cannot exhaust the stack).
        if (depth > 1000) return false;
        while (pattern.Length > 0 && s.Length > 0)
        {
            switch (pattern[0])
            {
                case (byte)'*':
                    while (pattern.Length > 1 && pattern[1] == '*') pattern = pattern.Slice(1);
                    if (pattern.Length == 1) return true;
                    for (int i = 0; i < s.Length; i++)
                    {
                        if (Match(pattern.Slice(1), s.Slice(i), depth + 1)) return true;
                    }
                    return false;
                case (byte)'?':
                    break;
                case (byte)'[':
                {
                    pattern = pattern.Slice(1);
                    bool not = pattern.Length > 0 && pattern[0] == '^';
                    if (not) pattern = pattern.Slice(1);
                    bool match = false;
                    while (true)
                    {
                        if (pattern.Length == 0) break;
                        if (pattern[0] == '\\' && pattern.Length >= 2)
                        {
                            pattern = pattern.Slice(1);
                            if (pattern[0] == s[0]) match = true;
                        }
                        else if (pattern[0] == ']') break;
                        else if (pattern.Length >= 3 && pattern[1] == '-')
                        {
                            byte start = pattern[0], end = pattern[2];
                            if (start > end) (start, end) = (end, start);
                            if (s[0] >= start && s[0] <= end) match = true;
                            pattern = pattern.Slice(2);
                        }
                        else if (pattern[0] == s[0]) match = true;
                        pattern = pattern.Slice(1);
                    }
                    if (not) match = !match;
                    if (!match) return false;
                    if (pattern.Length == 0) return s.Length == 1; // unterminated class: Redis stops here
                    break;
                }
                case (byte)'\\':
                    if (pattern.Length >= 2) pattern = pattern.Slice(1);
                    if (pattern[0] != s[0]) return false;
                    break;
                default:
                    if (pattern[0] != s[0]) return false;
                    break;
            }
            pattern = pattern.Slice(1);
            s = s.Slice(1);
        }
        while (pattern.Length > 0 && pattern[0] == '*') pattern = pattern.Slice(1);
        return pattern.Length == 0 && s.Length == 0;
    }
}
