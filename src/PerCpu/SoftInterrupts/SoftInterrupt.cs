using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using PerCpu.SoftInterrupts;

namespace PerCpu;

/// <summary>
/// An established soft interrupt (NetBSD's <c>softint_establish</c> cookie): a handler that code which must be quick
/// (an IPI function, a completion, a timer) hands the rest of its work to. It runs soon on the CPU it was scheduled on,
/// after that CPU's IPIs and before its tasks, at its <see cref="Level"/>, and coalesced: scheduling a handler that is
/// already pending on that CPU costs nothing and it runs once. The handle is valid on every CPU of its runtime.
/// Get one from <see cref="CpuRuntime.Establish(SoftLevel, Action{object?}, object?)"/>; dispose it to disestablish.
/// </summary>
/// <remarks>
/// On each CPU a handler is idle, pending, running, or both running and pending (scheduled again while it ran: it runs
/// once more afterwards). Pending handlers of one level run in the order they were scheduled. An asynchronous handler
/// that does not complete at once blocks its level on that CPU until it completes; other levels, IPIs and tasks go on.
/// </remarks>
[DebuggerDisplay("Soft interrupt {Level} #{Slot}")]
public sealed partial class SoftInterrupt : IDisposable, IAsyncDisposable
{
    /// <summary>Lifecycle values of <see cref="_lifecycle"/>.</summary>
    private const int Alive = 0, Disposing = 1, Abandoned = 2, Disposed = 3;

    /// <summary>Ints between two CPUs' words in <see cref="_remotePending"/>: 64 bytes, so senders to different CPUs do not share a line.</summary>
    private const int RemoteStride = 16;

    /// <summary>The runtime's table and per-CPU state (immutable reference).</summary>
    internal readonly SoftInterruptTable Table;

    /// <summary>This handle's index in the table and in every CPU's <see cref="SoftCpu.Hands"/> (the seed's offset cookie).</summary>
    internal readonly int Slot;

    /// <summary>The handler: exactly one of the two is set (immutable).</summary>
    internal readonly Action<object?>? SyncHandler;

    /// <inheritdoc cref="SyncHandler"/>
    internal readonly Func<object?, ValueTask>? AsyncHandler;

    /// <summary>The handler as a delegate, for trace records.</summary>
    internal readonly Delegate Handler;

    /// <summary>Passed to the handler (the seed's <c>sh_arg</c>).</summary>
    internal readonly object? State;

    /// <summary>
    /// Per target CPU (at <c>id * RemoteStride</c>): 1 while a <see cref="ScheduleOn"/> message is on its way there. Set by
    /// senders (any thread) with a CAS, cleared by the target CPU when the message runs. It lives in the handle, not in
    /// the slot-indexed per-CPU arrays, so that a late sender of a disposed handle can never touch the word of a new
    /// handle that reuses the slot.
    /// </summary>
    private readonly int[] _remotePending;

    /// <summary>Alive, Disposing, Abandoned (a disposal failed: still refuses schedules) or Disposed. Written with atomics by disposers; read by anyone.</summary>
    private int _lifecycle;

    internal SoftInterrupt(SoftInterruptTable table, int slot, SoftLevel level, Delegate handler, object? state)
    {
        Table = table;
        Slot = slot;
        Level = level;
        Handler = handler;
        SyncHandler = handler as Action<object?>;
        AsyncHandler = handler as Func<object?, ValueTask>;
        Debug.Assert((SyncHandler == null) != (AsyncHandler == null));
        State = state;
        _remotePending = new int[table.Cpus.Length * RemoteStride];
    }

    /// <summary>The priority at which the handler runs.</summary>
    public SoftLevel Level { get; }

    /// <summary>The runtime whose CPUs this soft interrupt runs on.</summary>
    public CpuRuntime Runtime => Table.Runtime;

    /// <summary>True once disposal has begun: schedules are refused and pending runs are dropped.</summary>
    internal bool IsDying => Volatile.Read(ref _lifecycle) != Alive;

    /// <summary>
    /// Schedules the handler on the calling CPU (seed: <c>softint_schedule</c>). If it is already pending there, nothing
    /// happens: it runs once. If it is running, it runs once more after it returns. Allocation-free and lock-free.
    /// </summary>
    /// <exception cref="InvalidOperationException">The calling thread is not a CPU of this soft interrupt's runtime: use <see cref="ScheduleOn(Cpu)"/>.</exception>
    /// <exception cref="ObjectDisposedException">The soft interrupt is disposed.</exception>
    public void Schedule()
    {
        Cpu? cpu = Cpu.Current;
        if (cpu == null || cpu.Runtime != Table.Runtime) ThrowNotOnCpu(cpu);
        if (Volatile.Read(ref _lifecycle) != Alive) ThrowDisposed();
        cpu.ScheduleSoftInterrupt(this);
    }

    /// <summary>
    /// Schedules the handler on <paramref name="cpu"/>, from any thread (the seed's to-do note, "a cheap way to direct software
    /// interrupts to remote CPUs"; NetBSD later added <c>softint_schedule_cpu</c>). On the calling CPU itself this is
    /// <see cref="Schedule"/>. Otherwise it sends one IPI, which does not wake <paramref name="cpu"/> if it is awake; while
    /// such a request is still on its way, further calls send nothing. Either way the handler starts on
    /// <paramref name="cpu"/> after this call, and sees what the caller wrote before it.
    /// </summary>
    /// <param name="cpu">A CPU of this soft interrupt's runtime.</param>
    /// <exception cref="ArgumentNullException"><paramref name="cpu"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="cpu"/> belongs to another runtime.</exception>
    /// <exception cref="ObjectDisposedException">The soft interrupt is disposed, or (from a thread that is not a CPU) the runtime is.</exception>
    public void ScheduleOn(Cpu cpu)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        if (cpu.Runtime != Table.Runtime) ThrowForeignCpu(cpu);
        if (Volatile.Read(ref _lifecycle) != Alive) ThrowDisposed();
        if (Cpu.Current == cpu)
        {
            cpu.ScheduleSoftInterrupt(this);
            return;
        }
        ref int remote = ref _remotePending[cpu.Id * RemoteStride];
        // One locked CAS, a full fence whether it succeeds or not: what the caller wrote before this call is visible
        // before we read the word. Pairs with the target's Exchange before it queues the handler: if we see the word
        // still set (and send nothing), the target has not cleared it yet, so the handler starts after that clear and
        // sees our writes (store-buffer litmus). While a request is pending the line stays in this core's cache (the
        // target writes it only when it clears it), so a coalesced call costs no line transfer.
        if (Interlocked.CompareExchange(ref remote, 1, 0) != 0) return; // coalesced
        try
        {
            cpu.Send(s_scheduleRemote, this);
        }
        catch
        {
            Volatile.Write(ref remote, 0); // nothing is on its way after all
            throw;
        }
    }

    private static readonly Action<object?, long> s_scheduleRemote = static (handle, _) => ((SoftInterrupt)handle!).RunRemoteSchedule();

    /// <summary>On the target CPU: the IPI sent by <see cref="ScheduleOn"/>.</summary>
    private void RunRemoteSchedule()
    {
        Cpu cpu = Cpu.Current!;
        // Full fence: the clear is visible before the handler can start (see ScheduleOn); a sender that comes after it
        // sends a new message rather than trusting this one.
        Interlocked.Exchange(ref _remotePending[cpu.Id * RemoteStride], 0);
        if (Volatile.Read(ref _lifecycle) != Alive) return; // disestablished while the message travelled: drop it
        cpu.ScheduleSoftInterrupt(this);
    }

    /// <inheritdoc/>
    public override string ToString() => $"Soft interrupt {Level} #{Slot}";

    [DoesNotReturn]
    private void ThrowNotOnCpu(Cpu? cpu)
    {
        if (cpu == null)
            throw new InvalidOperationException(
                "SoftInterrupt.Schedule() queues the handler on the calling CPU, but this thread is not a CPU. " +
                "From any other thread, use ScheduleOn(cpu) to direct it to a CPU.");
        throw new InvalidOperationException(
            $"SoftInterrupt.Schedule() was called on CPU {cpu.Id} of another CpuRuntime; this soft interrupt belongs to a different runtime. " +
            "Establish a soft interrupt in the runtime whose CPUs schedule it, or use ScheduleOn(cpu) with a CPU of this soft interrupt's runtime.");
    }

    [DoesNotReturn]
    private static void ThrowForeignCpu(Cpu cpu) => throw new ArgumentException(
        $"CPU {cpu.Id} belongs to another CpuRuntime than this soft interrupt: pass one of its own runtime's CPUs (softInterrupt.Runtime[id]).", nameof(cpu));

    [DoesNotReturn]
    private static void ThrowDisposed() => throw new ObjectDisposedException(nameof(SoftInterrupt),
        "This soft interrupt is disposed (disestablished) and can no longer be scheduled; establish a new one with CpuRuntime.Establish.");
}
