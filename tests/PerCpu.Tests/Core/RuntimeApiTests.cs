namespace PerCpu.Tests.Core;

public sealed class RuntimeApiTests
{
    [Fact]
    public async Task Cpus_IsAReadOnlyView_NotTheRuntimesOwnArray()
    {
        await using var runtime = TestUtil.Start(2);
        IReadOnlyList<Cpu> cpus = runtime.Cpus;
        Assert.False(cpus is Cpu[]);
        Assert.Equal(new[] { 0, 1 }, cpus.Select(c => c.Id));
        var asList = Assert.IsAssignableFrom<IList<Cpu>>(cpus);
        Assert.Throws<NotSupportedException>(() => asList[0] = runtime[1]);
        Assert.Same(runtime[0], runtime.Cpus[0]);
    }
}
