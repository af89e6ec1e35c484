using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using BenchmarkDotNet.Attributes;
using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.Bdn;

/// <summary>
/// Single-thread costs on one CPU, with BenchmarkDotNet and its MemoryDiagnoser. BenchmarkDotNet calls from its own
/// thread, which is not a CPU, so each invocation hands a loop of <see cref="Ops"/> operations to the CPU and spins
/// until it is done (a spin, not a blocking wait: a wake-up would cost more than thousands of operations). The
/// hand-off is amortised over the loop: OperationsPerInvoke reports per operation.
/// </summary>
[MemoryDiagnoser]
public class SingleThreadBenchmarks
{
    public const int Ops = 16_384;

    private CpuRuntime _runtime = null!;
    private Cpu _cpu = null!;
    private readonly SeqCounter _counter = new();
    private long _sent;
    private int _done;
    private Action _sendLoop = null!, _postLoop = null!, _postItem = null!;
    private InvokeSelfLoop _invokeLoop = null!;
    private int _posted;
    private SoftInterrupt _softInterrupt = null!;
    private Action _scheduleLoop = null!;
    private int _softRuns;
    private Exception? _error;
    private CpuRuntime _manual = null!;
    private SteppedPingPong _stepped = null!;

    [GlobalSetup]
    public void Setup()
    {
        _runtime = CpuRuntime.Start(new CpuRuntimeOptions { CpuCount = 1 });
        _cpu = _runtime[0];
        _sendLoop = SendLoop;
        _postLoop = PostLoop;
        _postItem = PostItem;
        _invokeLoop = new InvokeSelfLoop(_cpu, () => _done = 1);
        _softInterrupt = _runtime.Establish(SoftLevel.Clock, static s => ((SingleThreadBenchmarks)s!).OnSoftInterrupt(), this);
        _scheduleLoop = ScheduleLoop;
        _manual = CpuRuntime.StartManual(new CpuRuntimeOptions { CpuCount = 2 });
        _stepped = new SteppedPingPong(_manual);
        // A function or handler that throws is caught by the runtime and the loop stops: end the spin and report it,
        // rather than spin forever.
        _runtime.UnhandledException += (_, e) =>
        {
            _error ??= e.Exception;
            Volatile.Write(ref _done, 1);
        };
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _softInterrupt.Dispose();   // disestablish before the runtime goes (returns once the handler can never run again)
        _runtime.Dispose();
        _manual.Dispose();
    }

    /// <summary>Send to the current CPU: the function is called at once (no ring).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void SendToSelf() => RunOnCpu(_sendLoop);

    /// <summary>Post to the current CPU and its dispatch: queued as a task, run by the next dispatch pass.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void PostAndDispatchOnSelf() => RunOnCpu(_postLoop);

    /// <summary>InvokeAsync on the current CPU, awaited (continuation back on the CPU), one call after another.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void InvokeAsyncOnSelf() => RunOnCpu(_invokeLoop.Start);

    /// <summary>
    /// Schedule a soft interrupt on the current CPU and its dispatch: a Clock handler established once reschedules itself
    /// from inside its run until it has run <see cref="Ops"/> times, so each operation is one Schedule() plus one run.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void ScheduleAndDispatchOnSelf()
    {
        RunOnCpu(_scheduleLoop);
        if (_softRuns != Ops) throw new InvalidOperationException($"Schedule + dispatch: expected {Ops} handler runs, got {_softRuns}");
    }

    /// <summary>
    /// One Send round trip between the two CPUs of a manual runtime (no threads), both stepped with RunOnce on this
    /// thread: the library's own instructions for a ping-pong round trip (two sends, two drains, two dispatch passes,
    /// plus RunOnce's own context switch), with no line crossing cores. What <c>percpu.pingpong.poll</c> costs beyond
    /// this is the hardware's.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void RoundTripSteppedOnOneThread() => _stepped.Run(Ops);

    private void RunOnCpu(Action loop)
    {
        Volatile.Write(ref _done, 0);
        _cpu.Post(loop);
        while (Volatile.Read(ref _done) == 0) X86Base.Pause();
        if (_error is { } e) throw new InvalidOperationException($"a function or handler threw on the CPU: {e.Message}", e);
    }

    private void SendLoop()
    {
        Action<object?, long> fn = SeqCounter.Deliver;
        long start = _sent;
        for (long i = 0; i < Ops; i++) _cpu.Send(fn, _counter, start + i);
        _sent = start + Ops;
        Volatile.Write(ref _done, 1);
    }

    private void PostLoop()
    {
        _posted = 0;
        for (int i = 0; i < Ops; i++) _cpu.Post(_postItem);   // run by later dispatch passes, after this returns
    }

    private void PostItem()
    {
        if (++_posted == Ops) Volatile.Write(ref _done, 1);
    }

    /// <summary>Posted onto the CPU: the first Schedule; the handler does the rest.</summary>
    private void ScheduleLoop()
    {
        _softRuns = 0;
        _softInterrupt.Schedule();
    }

    /// <summary>The handler, on the CPU: schedule the next run until <see cref="Ops"/> have run.</summary>
    private void OnSoftInterrupt()
    {
        if (++_softRuns < Ops) _softInterrupt.Schedule();   // while running: it runs once more afterwards
        else Volatile.Write(ref _done, 1);
    }

    /// <summary>
    /// Awaits InvokeAsync on its own CPU <see cref="Ops"/> times without an async method (whose state machine box
    /// would be allocated per invocation and blur the per-call figure): a cached continuation resumes the loop.
    /// </summary>
    private sealed class InvokeSelfLoop
    {
        private static readonly Func<int> s_func = static () => 1;
        private readonly Cpu _cpu;
        private readonly Action _finished;
        private readonly Action _resume;
        private ValueTaskAwaiter<int> _awaiter;
        private int _remaining;

        public InvokeSelfLoop(Cpu cpu, Action finished)
        {
            _cpu = cpu;
            _finished = finished;
            _resume = Resume;
        }

        public void Start()
        {
            _remaining = Ops;
            Step();
        }

        private void Resume()
        {
            _awaiter.GetResult();
            Step();
        }

        private void Step()
        {
            while (_remaining-- > 0)
            {
                ValueTaskAwaiter<int> awaiter = _cpu.InvokeAsync(s_func).GetAwaiter();
                if (!awaiter.IsCompleted)
                {
                    _awaiter = awaiter;
                    awaiter.UnsafeOnCompleted(_resume);   // resumes on this CPU (its SynchronizationContext)
                    return;
                }
                awaiter.GetResult();
            }
            _finished();
        }
    }

    /// <summary>Request on CPU 1, reply on CPU 0, next request…; stepped by the benchmark thread.</summary>
    private sealed class SteppedPingPong
    {
        private static readonly Action<object?, long> s_request = Request, s_reply = Reply;

        private static void Request(object? o, long v) => ((SteppedPingPong)o!)._cpu0.Send(s_reply, o, v);

        private static void Reply(object? o, long v)
        {
            var game = (SteppedPingPong)o!;
            if (++game._count < game._target) game._cpu1.Send(s_request, game, v + 1);
        }

        private readonly Cpu _cpu0, _cpu1;
        private readonly Action _kick;
        private long _count, _target;

        public SteppedPingPong(CpuRuntime runtime)
        {
            _cpu0 = runtime[0];
            _cpu1 = runtime[1];
            _kick = () => _cpu1.Send(s_request, this, 0);   // runs on CPU 0 (a posted task)
        }

        public void Run(long n)
        {
            _count = 0;
            _target = n;
            _cpu0.Post(_kick);
            while (_count < n)
            {
                _cpu0.RunOnce();
                _cpu1.RunOnce();
            }
            _cpu0.RunOnce(); // the last reply's pass, so that nothing is left for the next invocation
            if (_count != n) throw new InvalidOperationException($"stepped ping-pong: expected {n} round trips, got {_count}");
        }
    }
}
