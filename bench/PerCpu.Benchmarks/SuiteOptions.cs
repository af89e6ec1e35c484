using System.Globalization;

namespace PerCpu.Benchmarks;

/// <summary>Command line of the suite: <c>[--quick] [--filter substr]... [--bdn] [--out dir] [--run-seconds s]</c>.</summary>
public sealed class SuiteOptions
{
    public const string Usage =
        "usage: PerCpu.Benchmarks [--quick] [--filter substr]... [--bdn] [--out dir] [--run-seconds s]\n" +
        "  (no arguments)   full harness run: calibrated, placement-gated, 5 kept runs per row\n" +
        "  --quick          CI check: every row once with tiny counts, no gating; exit 1 if any row fails\n" +
        "  --filter substr  only rows whose key or name contains substr (repeatable)\n" +
        "  --bdn            BenchmarkDotNet single-thread costs instead (with --quick: one dry iteration)\n" +
        "  --out dir        where results go (default: bench/results beside the checkout)\n" +
        "  --run-seconds s  target length of one measured run in full mode (default 0.4)";

    /// <summary>Tiny counts, one run per row, no calibration or gating: shows every row works, measures nothing.</summary>
    public bool Quick { get; set; }

    /// <summary>Rows whose key or name contains one of these (case-insensitive); empty = all.</summary>
    public List<string> Filters { get; } = [];

    /// <summary>Run the BenchmarkDotNet single-thread benchmarks instead of the harness.</summary>
    public bool Bdn { get; set; }

    /// <summary>Results directory; null = bench/results beside the checkout.</summary>
    public string? OutputDirectory { get; set; }

    /// <summary>Target seconds per measured run (full mode): long enough to average over the bimodal ring behaviour.</summary>
    public double RunSeconds { get; set; } = 0.4;

    public bool Help { get; set; }

    /// <summary>Parses the command line; throws <see cref="ArgumentException"/> with the usage on a bad argument.</summary>
    public static SuiteOptions Parse(IReadOnlyList<string> args)
    {
        var o = new SuiteOptions();
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            string Value()
            {
                int eq = a.IndexOf('=');
                if (eq > 0) return a[(eq + 1)..];
                if (i + 1 >= args.Count) throw new ArgumentException($"{a} needs a value\n{Usage}");
                return args[++i];
            }
            string name = a.Contains('=') ? a[..a.IndexOf('=')] : a;
            switch (name)
            {
                case "--quick": o.Quick = true; break;
                case "--bdn": o.Bdn = true; break;
                case "--filter": o.Filters.Add(Value()); break;
                case "--out": o.OutputDirectory = Value(); break;
                case "--run-seconds":
                    if (!double.TryParse(Value(), NumberStyles.Float, CultureInfo.InvariantCulture, out double s) || s <= 0 || s > 60)
                        throw new ArgumentException($"--run-seconds must be a number of seconds in (0, 60]\n{Usage}");
                    o.RunSeconds = s;
                    break;
                case "-h" or "--help" or "-?": o.Help = true; break;
                default: throw new ArgumentException($"unknown argument '{a}'\n{Usage}");
            }
        }
        return o;
    }
}
