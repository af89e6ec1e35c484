namespace PerCpu.Benchmarks.Harness;

/// <summary>Small statistics helpers (not on any hot path).</summary>
public static class Stats
{
    /// <summary>Median; for an even count the mean of the two middle values. NaN when empty.</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return double.NaN;
        double[] s = [.. values];
        Array.Sort(s);
        int m = s.Length / 2;
        return s.Length % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2;
    }
}
