using System.Runtime.CompilerServices;
using System.Collections.Concurrent;
using System.Threading.Tasks.Sources;

namespace PerCpu.Tests.Reliability;

/// <summary>Issue 11 items 1, 3, 5, 8, 9: shutdown loses nothing, never hangs; posts from outside are bounded.</summary>
[Collection("Stress")]
public sealed class ShutdownTests
{
    private sealed class Ledger
    {
        public long Sent;
        public long Ran;
        public long Iterations;
        public long Refused;
        public readonly ConcurrentQueue<Exception> Unexpected = new();
    }

    /// <summary>
    /// The review's reproduction: async loops on CPU 1 that await Task.Delay and then send to CPU 0. Their
    /// continuations arrive from the timer thread after disposal began. Every send that returned must have run.
    /// </summary>
    [Fact]
    public async Task AsyncLoopsSendingAcrossCpus_LoseNoMessage_AcrossManyDisposals()
    {
        for (int round = 0; round < 40; round++)
        {
            var ledger = new Ledger();
            var runtime = TestUtil.Start(2);
            var loops = new Task[16];
            for (int i = 0; i < loops.Length; i++)
            {
                var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                runtime[1].Post(() => _ = Loop(runtime, ledger, started));
                loops[i] = started.Task;
            }
            await Task.WhenAll(loops).WithHangDetector();
            // Let the loops go round a few times (progress, not time), then dispose under them.
            long target = Volatile.Read(ref ledger.Iterations) + loops.Length * 2;
            await Progress.Until(() => Volatile.Read(ref ledger.Iterations) >= target, () => Volatile.Read(ref ledger.Iterations), "async loops");
            await runtime.DisposeAsync().AsTask().WithHangDetector();
            // Every loop ends with a refused send (on the thread pool, after the CPUs stopped taking work).
            await Progress.Until(() => Volatile.Read(ref ledger.Refused) == loops.Length, () => Volatile.Read(ref ledger.Refused), "loops to end");
            Assert.Empty(ledger.Unexpected);
            Assert.Equal(Volatile.Read(ref ledger.Sent), Volatile.Read(ref ledger.Ran));
        }

        static async Task Loop(CpuRuntime runtime, Ledger ledger, TaskCompletionSource started)
        {
            started.SetResult();
            try
            {
                while (true)
                {
                    await Task.Delay(1);
                    runtime[0].Send(static (o, _) => Interlocked.Increment(ref ((Ledger)o!).Ran), ledger);
                    Interlocked.Increment(ref ledger.Sent);
                    Interlocked.Increment(ref ledger.Iterations);
                }
            }
            catch (ObjectDisposedException)
            {
                Interlocked.Increment(ref ledger.Refused);
            }
            catch (Exception e)
            {
                ledger.Unexpected.Enqueue(e);
                Interlocked.Increment(ref ledger.Refused);
            }
        }
    }

    /// <summary>An outside thread posts to CPU 0's context throughout disposal: every post runs exactly once, on a CPU or after the stop on the thread pool.</summary>
    [Fact]
    public async Task PostsRacingDisposal_RunExactlyOnce()
    {
        for (int round = 0; round < 20; round++)
        {
            var runtime = TestUtil.Start(2, o => o.InboxCapacity = 64);
            long posted = 0;
            var ran = new StrongBox<long>();
            using var stop = new ManualResetEventSlim();
            SynchronizationContext context = runtime[0].SynchronizationContext;
            var poster = Task.Factory.StartNew(() =>
            {
                while (!stop.IsSet)
                {
                    context.Post(static s => Interlocked.Increment(ref ((StrongBox<long>)s!).Value), ran);
                    posted++;
                }
            }, TaskCreationOptions.LongRunning);
            await Progress.Until(() => Volatile.Read(ref ran.Value) > 1000, () => Volatile.Read(ref ran.Value), "posts to run");
            await runtime.DisposeAsync().AsTask().WithHangDetector();
            stop.Set();
            await poster.WithHangDetector();
            await Progress.Until(() => Volatile.Read(ref ran.Value) >= posted, () => Volatile.Read(ref ran.Value), "every post to run");
            Assert.Equal(posted, Volatile.Read(ref ran.Value));
        }
    }


    /// <summary>
    /// Posts from outside are bounded (item 8): while the CPU is blocked, a flooding poster gets no further than the
    /// post queue's capacity; released, every post runs once.
    /// </summary>
    [Fact]
    public async Task PostsFromOutside_AreBounded_AndAllRun()
    {
        const int Capacity = 64, Total = 5_000;
        await using var runtime = TestUtil.Start(2, o => { o.InboxCapacity = Capacity; TestUtil.Quiet(o); });
        using var release = new ManualResetEventSlim();
        TestUtil.Block(runtime[0], release);
        long posted = 0;
        var ran = new StrongBox<long>();
        var poster = Task.Factory.StartNew(() =>
        {
            for (int i = 0; i < Total; i++)
            {
                runtime[0].SynchronizationContext.Post(static s => Interlocked.Increment(ref ((StrongBox<long>)s!).Value), ran);
                Interlocked.Increment(ref posted);
            }
        }, TaskCreationOptions.LongRunning);
        // The poster fills the queue and then must wait: it cannot get past the capacity while the CPU is blocked.
        await Progress.Until(() => Volatile.Read(ref posted) >= Capacity, () => Volatile.Read(ref posted), "the queue to fill");
        for (int i = 0; i < 100; i++)
        {
            Assert.True(Volatile.Read(ref posted) <= Capacity, $"posted {posted} with {Capacity} slots and the CPU blocked");
            await Task.Yield();
        }
        Assert.Equal(0, Volatile.Read(ref ran.Value));
        release.Set();
        await Progress.Await(poster, () => Volatile.Read(ref ran.Value), what: "the poster");
        await Progress.Until(() => Volatile.Read(ref ran.Value) == Total, () => Volatile.Read(ref ran.Value), "posts to run");
    }

    /// <summary>
    /// Item 3: Dispose() on a thread whose context runs on that same thread (here: a CPU of another runtime), while the
    /// runtime still has work in flight (so disposal has to wait), does not deadlock: the wait never posts to the
    /// caller's context, which the caller itself blocks.
    /// </summary>
    [Fact]
    public async Task Dispose_OnAThreadWithASingleThreadedContext_DoesNotDeadlock()
    {
        await using var host = TestUtil.Start(1);
        var runtime = TestUtil.Start(2);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ValueTask inFlight = runtime[1].InvokeAsync(async () => await release.Task);
        using var disposing = new ManualResetEventSlim();
        Task disposed = host[0].InvokeAsync(() =>
        {
            disposing.Set();
            runtime.Dispose();
        }).AsTask();
        disposing.WaitOrFail("the host CPU to start disposing");
        await Progress.Until(() => runtime.IsDisposed, () => 0, "disposal to begin");
        release.SetResult();
        await disposed.WithHangDetector();
        await inFlight;
    }

    /// <summary>
    /// Item 9: an async function given to InvokeAsync whose awaitable ignores the context completes off the CPU; the
    /// call still completes on its CPU and counts as finished (disposal does not hang), and its result is delivered.
    /// </summary>
    [Fact]
    public async Task InvokeAsync_WithAnAwaitableThatIgnoresTheContext_CompletesAndLetsDisposalFinish()
    {
        var runtime = TestUtil.Start(2);
        var source = new ContextIgnoringSource();
        ValueTask<int> call = runtime[1].InvokeAsync(() => new ValueTask<int>(source, 0));
        await Progress.Until(() => source.Registered, () => 0, "the call to await the source");
        source.CompleteOnThreadPool(7);
        Assert.Equal(7, await call.AsTask().WithHangDetector());
        await runtime.DisposeAsync().AsTask().WithHangDetector();
    }

    /// <summary>A source that runs its continuation on the thread pool whatever the awaiter asked.</summary>
    private sealed class ContextIgnoringSource : IValueTaskSource<int>
    {
        private Action<object?>? _continuation;
        private object? _state;
        private volatile bool _done;
        private int _result;
        public volatile bool Registered;

        public void CompleteOnThreadPool(int result)
        {
            _result = result;
            _done = true;
            ThreadPool.QueueUserWorkItem(_ => _continuation!(_state));
        }

        public ValueTaskSourceStatus GetStatus(short token) => _done ? ValueTaskSourceStatus.Succeeded : ValueTaskSourceStatus.Pending;

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        {
            _continuation = continuation;
            _state = state;
            Registered = true;
        }

        public int GetResult(short token) => _result;
    }

    /// <summary>Item 9: SendToMask from outside is refused whole after disposal began, never after some CPUs accepted it.</summary>
    [Fact]
    public async Task SendToMask_FromOutside_AfterDisposal_IsRefusedBeforeAnyCpuAcceptsIt()
    {
        var runtime = TestUtil.Start(3);
        long ran = 0;
        await runtime.DisposeAsync();
        var box = new StrongBox<long>();
        Assert.Throws<ObjectDisposedException>(() => runtime.SendToMask(runtime.AllCpus, static (o, _) => Interlocked.Increment(ref ((StrongBox<long>)o!).Value), box));
        Assert.Equal(0, ran + box.Value);
    }
}
