namespace PerCpu.Tests.Core;

/// <summary>
/// Which InvokeAsync overload a lambda or method group binds to. Each local is declared with the type a user expects
/// (ValueTask&lt;int&gt;, ValueTask): a binding to Func&lt;T&gt; would give ValueTask&lt;Task&lt;int&gt;&gt; and fail to
/// compile. The assertions then check that the task is awaited on the target CPU and its exception reaches the await.
/// </summary>
public sealed class InvokeOverloadTests
{
    private static async Task<int> WorkAsync()
    {
        await Task.Yield();
        return Cpu.Current!.Id;
    }

    private static async Task<int> FailAsync()
    {
        await Task.Yield();
        throw new FormatException("task boom");
    }

    private static async Task FailVoidAsync()
    {
        await Task.Yield();
        throw new FormatException("task void boom");
    }

    private static async ValueTask<int> ValueWorkAsync()
    {
        await Task.Yield();
        return Cpu.Current!.Id;
    }

    private static async ValueTask FailValueVoidAsync()
    {
        await Task.Yield();
        throw new FormatException("value task void boom");
    }

    private static int Work() => Cpu.Current!.Id;

    private static int s_voidRan;

    private static void VoidWork() => Interlocked.Exchange(ref s_voidRan, Cpu.Current!.Id + 100);

    [Fact]
    public async Task MethodGroup_ReturningTaskOfT_IsAwaitedOnTheTarget_AndItsExceptionSurfaces()
    {
        await using var runtime = TestUtil.Start(2);
        ValueTask<int> call = runtime[1].InvokeAsync(WorkAsync);
        Assert.Equal(1, await call.AsTask().WithHangDetector());
        ValueTask<int> failing = runtime[1].InvokeAsync(FailAsync);
        var e = await Assert.ThrowsAsync<FormatException>(() => failing.AsTask().WithHangDetector());
        Assert.Equal("task boom", e.Message);
    }

    [Fact]
    public async Task MethodGroup_ReturningTask_IsAwaited_AndItsExceptionSurfaces()
    {
        await using var runtime = TestUtil.Start(2);
        ValueTask call = runtime[1].InvokeAsync(FailVoidAsync);
        var e = await Assert.ThrowsAsync<FormatException>(() => call.AsTask().WithHangDetector());
        Assert.Equal("task void boom", e.Message);
    }

    [Fact]
    public async Task MethodGroups_ReturningValueTasks_PlainValues_AndVoid_BindAsExpected()
    {
        await using var runtime = TestUtil.Start(2);
        ValueTask<int> valueTask = runtime[1].InvokeAsync(ValueWorkAsync);
        Assert.Equal(1, await valueTask.AsTask().WithHangDetector());
        ValueTask valueVoid = runtime[1].InvokeAsync(FailValueVoidAsync);
        Assert.Equal("value task void boom", (await Assert.ThrowsAsync<FormatException>(() => valueVoid.AsTask().WithHangDetector())).Message);
        ValueTask<int> plain = runtime[1].InvokeAsync(Work);
        Assert.Equal(1, await plain.AsTask().WithHangDetector());
        ValueTask action = runtime[1].InvokeAsync(VoidWork);
        await action.AsTask().WithHangDetector();
        Assert.Equal(101, Volatile.Read(ref s_voidRan));
    }

    [Fact]
    public async Task AsyncLambdas_BindToTheAwaitingForms_AndTheirExceptionsSurface()
    {
        await using var runtime = TestUtil.Start(2);
        ValueTask<int> withResult = runtime[1].InvokeAsync(async () =>
        {
            await Task.Yield();
            return Cpu.Current!.Id;
        });
        Assert.Equal(1, await withResult.AsTask().WithHangDetector());

        ValueTask<int> throwing = runtime[1].InvokeAsync(async () =>
        {
            await Task.Yield();
            if (Cpu.Current != null) throw new FormatException("async lambda boom");
            return 0;
        });
        Assert.Equal("async lambda boom", (await Assert.ThrowsAsync<FormatException>(() => throwing.AsTask().WithHangDetector())).Message);

        ValueTask noResult = runtime[1].InvokeAsync(async () =>
        {
            await Task.Yield();
            throw new FormatException("async void-ish boom");
        });
        Assert.Equal("async void-ish boom", (await Assert.ThrowsAsync<FormatException>(() => noResult.AsTask().WithHangDetector())).Message);
    }

    [Fact]
    public async Task SyncLambdas_ReturningTasks_AreAwaited()
    {
        await using var runtime = TestUtil.Start(2);
        ValueTask<int> fromTask = runtime[1].InvokeAsync(static () => Task.FromResult(7));
        Assert.Equal(7, await fromTask.AsTask().WithHangDetector());
        ValueTask<int> faulted = runtime[1].InvokeAsync(static () => Task.FromException<int>(new FormatException("faulted task")));
        Assert.Equal("faulted task", (await Assert.ThrowsAsync<FormatException>(() => faulted.AsTask().WithHangDetector())).Message);
        ValueTask voidTask = runtime[1].InvokeAsync(static () => FailVoidAsync());
        Assert.Equal("task void boom", (await Assert.ThrowsAsync<FormatException>(() => voidTask.AsTask().WithHangDetector())).Message);
        ValueTask<int> plain = runtime[1].InvokeAsync(static () => 5);
        Assert.Equal(5, await plain.AsTask().WithHangDetector());
    }

    [Fact]
    public async Task NullTask_FaultsWithAMessageThatSaysWhatToReturn()
    {
        await using var runtime = TestUtil.Start(2);
        ValueTask call = runtime[1].InvokeAsync(static () => (Task)null!);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => call.AsTask().WithHangDetector());
        Assert.Contains("returned a null Task", e.Message);
    }

    private readonly record struct Pair(int A, int B);

    private static Task<int> SumAsync(Pair p) => Task.FromResult(p.A + p.B);

    [Fact]
    public async Task StatePassingForms_BindAndPassTheState()
    {
        await using var runtime = TestUtil.Start(2);
        var pair = new Pair(20, 22);
        ValueTask<int> sync = runtime[1].InvokeAsync(static p => p.A + p.B, pair);
        Assert.Equal(42, await sync.AsTask().WithHangDetector());
        ValueTask<int> async = runtime[1].InvokeAsync(static async p =>
        {
            await Task.Yield();
            return p.A * p.B + Cpu.Current!.Id;
        }, pair);
        Assert.Equal(441, await async.AsTask().WithHangDetector());
        ValueTask<int> methodGroup = runtime[1].InvokeAsync(SumAsync, pair);
        Assert.Equal(42, await methodGroup.AsTask().WithHangDetector());
        var box = new int[1];
        ValueTask action = runtime[1].InvokeAsync(static b => { b[0] = Cpu.Current!.Id + 1; }, box);
        await action.AsTask().WithHangDetector();
        Assert.Equal(2, box[0]);
        ValueTask asyncVoid = runtime[1].InvokeAsync(static async b =>
        {
            await Task.Yield();
            throw new FormatException($"state {b.Length}");
        }, box);
        Assert.Equal("state 1", (await Assert.ThrowsAsync<FormatException>(() => asyncVoid.AsTask().WithHangDetector())).Message);
        ValueTask taskVoid = runtime[1].InvokeAsync(static b => Task.FromException(new FormatException($"task state {b.Length}")), box);
        Assert.Equal("task state 1", (await Assert.ThrowsAsync<FormatException>(() => taskVoid.AsTask().WithHangDetector())).Message);
    }

    [Fact]
    public async Task StatePassingForm_WithCancelledToken_DoesNotRun()
    {
        await using var runtime = TestUtil.Start(2);
        var box = new int[1];
        ValueTask call = runtime[1].InvokeAsync(static b => { b[0] = 1; }, box, new CancellationToken(true));
        Assert.True(call.IsCanceled);
        await runtime[1].InvokeAsync(static () => { }).AsTask().WithHangDetector();
        Assert.Equal(0, box[0]);
    }
}
