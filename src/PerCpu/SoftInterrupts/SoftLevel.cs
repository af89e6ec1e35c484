namespace PerCpu;

/// <summary>
/// The priority of a soft interrupt (NetBSD's <c>SOFTINT_CLOCK</c> … <c>SOFTINT_SERIAL</c>). Priority rises in
/// declaration order: a CPU runs pending <see cref="Serial"/> handlers first, then <see cref="Net"/>, <see cref="Bio"/>
/// and <see cref="Clock"/>. The names are only a guide, as in the kernel.
/// </summary>
public enum SoftLevel
{
    /// <summary>Lowest priority (timer callouts in the kernel).</summary>
    Clock = 0,

    /// <summary>Above <see cref="Clock"/> (block I/O completion in the kernel).</summary>
    Bio = 1,

    /// <summary>Above <see cref="Bio"/> (network protocol processing in the kernel).</summary>
    Net = 2,

    /// <summary>Highest priority (serial lines, which must not lose characters, in the kernel).</summary>
    Serial = 3,
}
