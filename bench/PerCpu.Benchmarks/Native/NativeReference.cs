using System.Diagnostics;
using System.Globalization;

namespace PerCpu.Benchmarks.Native;

/// <summary>
/// The C reference (bench/native/percpu_native.c): found beside the checkout, built with gcc at run time into
/// bench/native/build/ (git-ignored) when the binary is missing or older than the source, and run once per
/// measurement. It prints "OK\tseconds\toperations\tnote" or "FAIL\treason".
/// </summary>
public sealed class NativeReference
{
    private const string SourceName = "percpu_native.c";
    private const string BinaryName = "percpu_native";
    public const string CompilerFlags = "-O2 -std=c11 -Wall -Wextra -pthread";

    private NativeReference(string binaryPath, string compiler)
    {
        BinaryPath = binaryPath;
        Compiler = compiler;
    }

    public string BinaryPath { get; }

    /// <summary>"gcc 12.2.0 -O2 ..." for the report.</summary>
    public string Compiler { get; }

    /// <summary>A run may take this long before it counts as hung.</summary>
    public static TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Finds the source, builds it if needed; throws with a message that says what is missing.</summary>
    public static NativeReference Prepare(string nativeDir)
    {
        string source = Path.Combine(nativeDir, SourceName);
        if (!File.Exists(source))
            throw new FileNotFoundException($"native reference source not found: {source}", source);
        string buildDir = Path.Combine(nativeDir, "build");
        string binary = Path.Combine(buildDir, BinaryName);
        string version = RunTool("gcc", ["-dumpfullversion"], TimeSpan.FromSeconds(30)).Trim();
        if (!File.Exists(binary) || File.GetLastWriteTimeUtc(binary) < File.GetLastWriteTimeUtc(source))
        {
            Directory.CreateDirectory(buildDir);
            // Build to a private name and rename, so a concurrent run never executes a half-written binary.
            string tmp = $"{binary}.{Environment.ProcessId}.tmp";
            var args = new List<string>(CompilerFlags.Split(' ')) { "-o", tmp, source };
            RunTool("gcc", args, TimeSpan.FromMinutes(2));
            File.Move(tmp, binary, overwrite: true);
        }
        return new NativeReference(binary, $"gcc {version} {CompilerFlags}");
    }

    /// <summary>One measurement: <paramref name="mode"/> with <paramref name="n"/> operations.</summary>
    public (double Seconds, long Operations, string Note) Run(string mode, long n)
    {
        string output = RunTool(BinaryPath, [mode, n.ToString(CultureInfo.InvariantCulture)], Timeout);
        foreach (string line in output.Split('\n'))
        {
            string[] f = line.Split('\t');
            if (f[0] == "OK" && f.Length >= 3)
                return (double.Parse(f[1], CultureInfo.InvariantCulture), long.Parse(f[2], CultureInfo.InvariantCulture), f.Length > 3 ? f[3] : "");
        }
        throw new InvalidOperationException($"{BinaryName} {mode} {n}: unexpected output: {output.Trim()}");
    }

    /// <summary><paramref name="count"/> placement probes, <paramref name="intervalMs"/> ms apart (ns per line round trip).</summary>
    public IReadOnlyList<double> Probe(int count, int intervalMs)
    {
        string output = RunTool(BinaryPath, ["probe", count.ToString(CultureInfo.InvariantCulture), intervalMs.ToString(CultureInfo.InvariantCulture)], Timeout);
        var probes = new List<double>(count);
        foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            probes.Add(double.Parse(line, CultureInfo.InvariantCulture));
        if (probes.Count != count) throw new InvalidOperationException($"{BinaryName} probe: expected {count} lines, got: {output.Trim()}");
        return probes;
    }

    /// <summary>Runs a tool, returns its stdout; throws with its stderr/stdout when it fails or hangs.</summary>
    private static string RunTool(string file, IEnumerable<string> args, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args) psi.ArgumentList.Add(a);
        Process p;
        try
        {
            p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"could not start {file}: {e.Message} (the native reference needs gcc on PATH)", e);
        }
        using (p)
        {
            Task<string> stdout = p.StandardOutput.ReadToEndAsync();
            Task<string> stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(timeout))
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException($"{Path.GetFileName(file)} {string.Join(' ', args)} did not finish within {timeout.TotalSeconds:0} s");
            }
            p.WaitForExit();   // drains the redirected streams
            string output = stdout.Result;
            if (p.ExitCode != 0)
            {
                string err = (stderr.Result + output).Trim();
                throw new InvalidOperationException($"{Path.GetFileName(file)} {string.Join(' ', args)} exited with {p.ExitCode}: {err}");
            }
            return output;
        }
    }
}
