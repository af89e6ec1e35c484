using System.Runtime.CompilerServices;
using PerCpu.Platform;

namespace PerCpu.Dispatch;

/// <summary>
/// Parks one CPU thread and wakes it: the "hardware IPI" (cpu_send_ipiq). A permit-style parker: an
/// <see cref="Unpark"/> that comes before <see cref="Park"/> makes the next park return at once, so a wake is never
/// lost. Written by any waker, waited on by the owning CPU thread only.
/// </summary>
internal sealed unsafe class Parker
{
    private const int Empty = 0, Notified = 1, Parked = -1;

    /// <summary>Keeps the pinned state word alive; the futex needs a stable address, so it lives on the pinned heap.</summary>
    private readonly int[] _storage = GC.AllocateArray<int>(32, pinned: true);

    /// <summary>The state word, alone on its cache line. Written by the owner and by wakers, always with atomics.</summary>
    private readonly int* _state;

    /// <summary>Fallback where there is no futex: a managed event (always used for the wait, set by wakers).</summary>
    private readonly ManualResetEventSlim? _event;

    public Parker() : this(Futex.IsSupported)
    {
    }

    /// <summary>Test hook: <paramref name="useFutex"/> false forces the managed event, as on platforms without a futex.</summary>
    internal Parker(bool useFutex)
    {
        // Element 16 of 32 ints: 64 bytes on either side, so no neighbour shares its line.
        _state = (int*)Unsafe.AsPointer(ref _storage[16]);
        if (!useFutex) _event = new ManualResetEventSlim(false, spinCount: 0);
    }

    /// <summary>Sleeps until <see cref="Unpark"/> or the timeout; returns at once if a permit is pending. Owner thread only.</summary>
    public void Park(TimeSpan timeout)
    {
        int* state = _state;
        // Consume a pending permit without sleeping.
        if (Interlocked.Exchange(ref *state, Empty) == Notified) return;
        // Empty -> Parked; a waker that comes in between turns it into Notified and we return.
        if (Interlocked.CompareExchange(ref *state, Parked, Empty) != Empty)
        {
            Interlocked.Exchange(ref *state, Empty);
            return;
        }
        if (_event is null)
        {
            // The kernel re-checks *state == Parked atomically with going to sleep: no lost wake-up.
            Futex.Wait(state, Parked, (long)(timeout.Ticks * 100));
        }
        else
        {
            _event.Wait(timeout);
            _event.Reset();
        }
        // Whether woken, timed out or spuriously returned: leave the state Empty (consuming any permit).
        Interlocked.Exchange(ref *state, Empty);
    }

    /// <summary>
    /// True while the owner is past its last look for work and asleep, or about to sleep, until <see cref="Unpark"/> or
    /// the timeout (the state word is Parked). Any thread, racy: the stall watchdog and tests use it.
    /// </summary>
    internal bool IsSleeping => Volatile.Read(ref *_state) == Parked;

    /// <summary>Gives the owner a permit and wakes it if it sleeps. Any thread.</summary>
    public void Unpark()
    {
        // Exchange is a full fence: whatever the waker published before is visible once the owner wakes.
        if (Interlocked.Exchange(ref *_state, Notified) == Parked)
        {
            if (_event is null) Futex.WakeOne(_state);
            else _event.Set();
        }
    }
}
