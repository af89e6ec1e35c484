namespace PerCpu.Dispatch;

/// <summary>
/// The <see cref="SynchronizationContext"/> installed on each CPU thread, so that <c>await</c> on a CPU resumes on that
/// CPU. Posts from the CPU itself go straight to its local task queue; posts from anywhere else go through the
/// CPU's remote queue and wake it.
/// </summary>
internal sealed class CpuSynchronizationContext(Cpu cpu) : SynchronizationContext
{
    internal Cpu Cpu { get; } = cpu;

    public override void Post(SendOrPostCallback d, object? state)
    {
        ArgumentNullException.ThrowIfNull(d);
        Cpu.EnqueueTask(new TaskItem(d, state));
    }

    public override void Send(SendOrPostCallback d, object? state)
    {
        ArgumentNullException.ThrowIfNull(d);
        if (Cpu.Current == Cpu)
        {
            d(state);
            return;
        }
        // Blocking a thread until the CPU ran d: fine off-CPU; from another CPU it could deadlock, so refuse.
        if (Cpu.Current != null)
            throw new InvalidOperationException($"SynchronizationContext.Send from CPU {Cpu.Current.Id} to CPU {Cpu.Id} would block a CPU; use Post or Cpu.InvokeAsync.");
        using var done = new ManualResetEventSlim();
        Exception? error = null;
        Post(_ =>
        {
            try { d(state); }
            catch (Exception e) { error = e; }
            finally { done.Set(); }
        }, null);
        done.Wait();
        if (error != null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
    }

    public override SynchronizationContext CreateCopy() => this;
}

/// <summary>A <see cref="TaskScheduler"/> that runs tasks on one CPU, one at a time, in the task phase of its loop.</summary>
internal sealed class CpuTaskScheduler(Cpu cpu) : TaskScheduler
{
    public override int MaximumConcurrencyLevel => 1;

    protected override void QueueTask(Task task) => cpu.EnqueueTask(new TaskItem(task, null));

    protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued)
        => Cpu.Current == cpu && !taskWasPreviouslyQueued && TryExecuteTask(task);

    protected override IEnumerable<Task>? GetScheduledTasks() => null; // not tracked: the queue is a lock-free ring

    internal void Execute(Task task) => TryExecuteTask(task);
}
