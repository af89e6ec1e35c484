namespace PerCpu.Tests.Reliability;

/// <summary>
/// Hang detection by lack of progress: a wait fails only when the observed value has not moved for a whole stall
/// period, never because a workload took long on a loaded machine.
/// </summary>
internal static class Progress
{
    public static readonly TimeSpan Stall = TimeSpan.FromSeconds(60);

    /// <summary>Waits until <paramref name="done"/> holds; fails if <paramref name="progress"/> stays the same for <see cref="Stall"/>.</summary>
    public static Task Until(Func<bool> done, Func<long> progress, string what) => Until(done, progress, () => what);

    /// <summary>As above, with a description built when it fails (it may report what went wrong meanwhile).</summary>
    public static async Task Until(Func<bool> done, Func<long> progress, Func<string> what)
    {
        long last = progress();
        DateTime lastMove = DateTime.UtcNow;
        while (!done())
        {
            await Task.Delay(5);
            long now = progress();
            if (now != last)
            {
                last = now;
                lastMove = DateTime.UtcNow;
            }
            else if (DateTime.UtcNow - lastMove > Stall)
            {
                throw new Xunit.Sdk.XunitException($"No progress for {Stall.TotalSeconds:F0} s (stuck at {now}): {what()}");
            }
        }
    }

    /// <summary>Awaits <paramref name="task"/>, failing if <paramref name="progress"/> stays the same for <see cref="Stall"/> meanwhile.</summary>
    public static async Task Await(Task task, Func<long> progress, string what)
    {
        await Until(() => task.IsCompleted, progress, what);
        await task;
    }
}
