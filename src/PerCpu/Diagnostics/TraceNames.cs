using System.Reflection;

namespace PerCpu.Diagnostics;

/// <summary>Names for trace output: the seed's KTR point names, and readable names for delegates (resolved at export only).</summary>
internal static class TraceNames
{
    /// <summary>By <see cref="TraceEvent"/> value: the names of the seed's <c>KTR_INFO</c> points (and of the soft interrupt points).</summary>
    private static readonly string[] s_points =
    [
        "send_norm", "send_pasv", "send_nbio", "send_fail", "receive", "cpu_send", "send_end",
        "sync_start", "sync_end", "softint_entry", "softint_exit", "io_ready", "io_receive", "io_send",
    ];

    /// <summary>The KTR-style name of a trace point, for example <c>send_norm</c>.</summary>
    public static string Point(TraceEvent ev) => (uint)ev < (uint)s_points.Length ? s_points[(int)ev] : "event_" + (int)ev;

    /// <summary>The Chrome trace category of a trace point.</summary>
    public static string Category(TraceEvent ev) => ev switch
    {
        TraceEvent.SyncStart or TraceEvent.SyncEnd => "cpusync",
        TraceEvent.SoftintEntry or TraceEvent.SoftintExit => "softint",
        TraceEvent.CpuSend => "wake",
        TraceEvent.IoReady or TraceEvent.IoReceive or TraceEvent.IoSend => "io",
        _ => "ipiq",
    };

    /// <summary>
    /// <c>Type.Method</c> for a delegate, with the compiler's closure classes folded into the type that wrote the lambda
    /// (<c>Program.&lt;Main&gt;b__0_0</c> rather than <c>&lt;&gt;c.&lt;Main&gt;b__0_0</c>) and generic arity dropped.
    /// </summary>
    public static string Describe(Delegate func)
    {
        MethodInfo method = func.Method;
        Type? type = method.DeclaringType;
        while (type != null && type.Name.StartsWith('<') && type.DeclaringType != null) type = type.DeclaringType;
        if (type == null) return method.Name;
        string typeName = type.Name;
        int tick = typeName.IndexOf('`');
        if (tick > 0) typeName = typeName[..tick];
        return typeName + "." + method.Name;
    }
}
