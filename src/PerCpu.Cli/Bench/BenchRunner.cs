using System.Diagnostics;

namespace PerCpu.Cli.Bench;

/// <summary>
/// <c>percpu bench</c>: runs the benchmark suite of a PerCpu source tree (<c>bench/PerCpu.Benchmarks</c>) with
/// <c>dotnet run -c Release</c>, passing the arguments through. The suite is not shipped inside the tool (it builds a
/// native reference and needs the SDK), so the tool looks for the tree from the current directory and from its own
/// location, upwards.
/// </summary>
internal static class BenchRunner
{
    /// <summary>The suite's project, relative to the repository root.</summary>
    internal static readonly string ProjectRelativePath = Path.Combine("bench", "PerCpu.Benchmarks", "PerCpu.Benchmarks.csproj");

    /// <summary>The suite's project file found in or above one of <paramref name="startDirectories"/>, or null.</summary>
    internal static string? FindProject(IEnumerable<string> startDirectories)
    {
        foreach (string start in startDirectories)
        {
            for (DirectoryInfo? dir = new(start); dir != null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, ProjectRelativePath);
                if (File.Exists(candidate)) return candidate;
            }
        }
        return null;
    }

    public static async Task<int> RunAsync(IReadOnlyList<string> suiteArgs, CliConsole console, CancellationToken cancellationToken)
    {
        string? project = FindProject([Directory.GetCurrentDirectory(), AppContext.BaseDirectory]);
        if (project == null)
        {
            await console.Error.WriteLineAsync(
                $"percpu bench: the benchmark suite ({ProjectRelativePath}) was not found above '{Directory.GetCurrentDirectory()}' " +
                $"or above the tool's own folder. Run it from inside a PerCpu source tree (git clone the repository, cd into it, " +
                "then: dotnet run --project src/PerCpu.Cli -- bench).");
            return 2;
        }
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false };
        foreach (string a in (string[])["run", "-c", "Release", "--project", project, "--"]) start.ArgumentList.Add(a);
        foreach (string a in suiteArgs) start.ArgumentList.Add(a);
        await console.Error.WriteLineAsync($"percpu bench: dotnet run -c Release --project {project} -- {string.Join(' ', suiteArgs)}");
        using Process process = Process.Start(start)
            ?? throw new InvalidOperationException("Could not start 'dotnet': is the .NET SDK on the PATH?");
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
        }
        return process.ExitCode;
    }
}
