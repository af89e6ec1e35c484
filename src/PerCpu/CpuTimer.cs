using System.Diagnostics;
using PerCpu.Timers;

namespace PerCpu;

/// <summary>
/// A timer that belongs to one CPU (NetBSD's <c>callout(9)</c>): its callback runs on that CPU, at the
/// <see cref="SoftLevel.Clock"/> soft-interrupt level (softclock), so it runs after the IPIs and the higher soft
/// interrupts of the same dispatch pass and before the tasks. Arming, re-arming and stopping allocate nothing.
/// <para>
/// Owner-only: create it anywhere, but call <see cref="Start"/>, <see cref="Reset"/>, <see cref="Stop"/> and
/// <see cref="Dispose"/> on its <see cref="Cpu"/> (from an IPI function, a task or a soft interrupt running there, a
/// callback included); any other thread gets an <see cref="InvalidOperationException"/> that names the owning CPU.
/// Because every change happens on the CPU that fires it, <see cref="Stop"/> needs no race rules: once it returns, the
/// callback does not run (unless the timer is started again), even if the timer expired earlier in the same softclock run.
/// </para>
/// <para>
/// Never early: the callback runs only once the due time, measured from the <see cref="Start"/> or <see cref="Reset"/>
/// call, has fully elapsed (resolution 1 ms: it may run up to about a millisecond, plus scheduling, late). An armed
/// timer does not keep the runtime alive: when the runtime is disposed, timers still armed are dropped without firing.
/// </para>
/// </summary>
[DebuggerDisplay("CpuTimer on CPU {Cpu.Id}, armed = {IsArmedUnsafe}")]
public sealed class CpuTimer : IDisposable
{
    /// <summary>The wheel's view of this timer: the intrusive links, and the call into softclock.</summary>
    private sealed class Node(CpuTimer timer) : TimerNode
    {
        protected internal override void Fire()
        {
            CpuTimer t = timer;
            t.Cpu.RunTimerCallback(t._callback, t._state);
        }
    }

    private readonly Node _node;
    private readonly Action<object?> _callback;
    private readonly object? _state;

    /// <summary>The due time of the last <see cref="Start"/>, for <see cref="Reset"/>. Owner only.</summary>
    private TimeSpan _dueTime = Timeout.InfiniteTimeSpan;

    private bool _disposed;

    /// <summary>Creates a stopped timer for <paramref name="cpu"/>. Any thread.</summary>
    /// <param name="cpu">The CPU it belongs to: the callback runs there, and only there may it be started or stopped.</param>
    /// <param name="callback">Called with <paramref name="state"/> on <paramref name="cpu"/> at the Clock level each time the timer expires. A static lambda keeps it allocation-free. An exception it throws is counted and raised on <see cref="CpuRuntime.UnhandledException"/>; the CPU and the other timers go on.</param>
    /// <param name="state">Passed to <paramref name="callback"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="cpu"/> or <paramref name="callback"/> is null.</exception>
    public CpuTimer(Cpu cpu, Action<object?> callback, object? state = null)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        ArgumentNullException.ThrowIfNull(callback);
        Cpu = cpu;
        _callback = callback;
        _state = state;
        _node = new Node(this);
    }

    /// <summary>The CPU this timer belongs to.</summary>
    public Cpu Cpu { get; }

    /// <summary>True while the timer is armed: started and neither fired nor stopped since. Owning CPU only.</summary>
    /// <exception cref="InvalidOperationException">Called on another thread than the owning CPU.</exception>
    public bool IsArmed
    {
        get
        {
            CheckOwner("CpuTimer.IsArmed");
            return _node.IsArmed;
        }
    }

    private bool IsArmedUnsafe => _node.IsArmed;

    /// <summary>
    /// Arms the timer to fire once, <paramref name="dueTime"/> from now (NetBSD <c>callout_reset</c>): if it was armed,
    /// the earlier expiry is cancelled. May be called from the timer's own callback (a periodic timer re-arms itself there).
    /// </summary>
    /// <param name="dueTime">Zero or more: the callback runs once this much time has elapsed. Zero runs it at this CPU's next softclock.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dueTime"/> is negative.</exception>
    /// <exception cref="InvalidOperationException">Called on another thread than the owning CPU.</exception>
    /// <exception cref="ObjectDisposedException">The timer is disposed.</exception>
    public void Start(TimeSpan dueTime)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dueTime, TimeSpan.Zero);
        CheckOwner("CpuTimer.Start");
        ObjectDisposedException.ThrowIf(_disposed, this);
        _dueTime = dueTime;
        Cpu.ArmTimer(_node, Cpu.DueAfter(Stopwatch.GetTimestamp(), dueTime));
    }

    /// <summary>
    /// Arms the timer again with the due time of the last <see cref="Start"/>, counted from now (a watchdog's "kick"):
    /// an earlier expiry, if armed, is cancelled.
    /// </summary>
    /// <exception cref="InvalidOperationException">Called on another thread than the owning CPU, or the timer was never started.</exception>
    /// <exception cref="ObjectDisposedException">The timer is disposed.</exception>
    public void Reset()
    {
        CheckOwner("CpuTimer.Reset");
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_dueTime == Timeout.InfiniteTimeSpan)
            throw new InvalidOperationException("CpuTimer.Reset re-arms with the due time of the last Start, but this timer was never started: call Start(dueTime) first.");
        Cpu.ArmTimer(_node, Cpu.DueAfter(Stopwatch.GetTimestamp(), _dueTime));
    }

    /// <summary>
    /// Disarms the timer (NetBSD <c>callout_stop</c>): once this returns, the callback does not run until the timer is
    /// started again, even if it had expired and was waiting to fire in the current softclock run.
    /// </summary>
    /// <returns><see langword="true"/> if the timer was armed (this call prevented a firing); <see langword="false"/> if it had already fired or was not started.</returns>
    /// <exception cref="InvalidOperationException">Called on another thread than the owning CPU.</exception>
    public bool Stop()
    {
        CheckOwner("CpuTimer.Stop");
        return Cpu.DisarmTimer(_node);
    }

    /// <summary>
    /// Stops the timer for good: it never fires again and cannot be started. On the owning CPU; from another thread only
    /// once the runtime is disposed (then nothing can fire, and this does nothing else).
    /// </summary>
    /// <exception cref="InvalidOperationException">Called on another thread than the owning CPU while the runtime runs.</exception>
    public void Dispose()
    {
        if (Cpu.Current != Cpu && Cpu.Runtime.Internals.Stopped)
        {
            _disposed = true;
            return;
        }
        CheckOwner("CpuTimer.Dispose");
        Cpu.DisarmTimer(_node);
        _disposed = true;
    }

    private void CheckOwner(string what)
    {
        if (Cpu.Current != Cpu) throw Cpu.NotOnThisCpu(what, "a timer created for the calling CPU");
    }
}
