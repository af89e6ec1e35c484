using Spectre.Console;

namespace PerCpu.Cli;

/// <summary>
/// Where the tool writes: plain writers for text and JSON, a Spectre console for tables, and whether a live view is
/// possible (a terminal that understands ANSI and is not redirected). CI logs and pipes get plain lines, as
/// <c>dotnet-counters</c> does when it is not on a terminal.
/// </summary>
internal sealed class CliConsole(TextWriter output, TextWriter error, IAnsiConsole ansi, bool interactive)
{
    /// <summary>Standard output (plain lines, JSON).</summary>
    public TextWriter Out { get; } = output;

    /// <summary>Standard error (problems).</summary>
    public TextWriter Error { get; } = error;

    /// <summary>Tables and the live view, rendered to <see cref="Out"/>.</summary>
    public IAnsiConsole Ansi { get; } = ansi;

    /// <summary>True if a live, redrawn view can be shown.</summary>
    public bool Interactive { get; } = interactive;

    /// <summary>The process's console: live view only on an ANSI terminal whose output is not redirected.</summary>
    public static CliConsole ForProcess()
    {
        if (Console.IsOutputRedirected)
        {
            // A pipe or a CI log: no colour codes, no cursor movement, and tables as wide as a log line can be.
            CliConsole plain = ForWriters(Console.Out, Console.Error);
            plain.Ansi.Profile.Width = 120;
            return plain;
        }
        IAnsiConsole ansi = AnsiConsole.Console;
        return new CliConsole(Console.Out, Console.Error, ansi, ansi.Profile.Capabilities.Ansi && ansi.Profile.Capabilities.Interactive);
    }

    /// <summary>Plain output into writers (tests, embedding): no colours, no cursor movement, wide enough not to wrap tables.</summary>
    public static CliConsole ForWriters(TextWriter output, TextWriter error)
    {
        IAnsiConsole ansi = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        ansi.Profile.Width = 160;
        return new CliConsole(output, error, ansi, interactive: false);
    }
}
