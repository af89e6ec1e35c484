namespace PerCpu.Ipi;

/// <summary>One IPI message (the seed's <c>ip_info[]</c> entry): the function and its two arguments, 24 bytes.</summary>
internal struct IpiEntry
{
    public Action<object?, long>? Func;
    public object? Arg1;
    public long Arg2;
}
