namespace PerCpu.Benchmarks.Peers;

/// <summary>One request, the ring entry of the C reference in C#: a function, its object argument and a long (24 bytes).</summary>
public readonly struct Msg(Action<object?, long> fn, object? arg, long val)
{
    public readonly Action<object?, long> Fn = fn;
    public readonly object? Arg = arg;
    public readonly long Val = val;

    public void Invoke() => Fn(Arg, Val);
}
