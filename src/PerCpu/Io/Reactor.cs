using System.ComponentModel;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using PerCpu.Platform;

namespace PerCpu.Io;

/// <summary>
/// One CPU's I/O poller and sleeping place (DESIGN §9): an epoll set holding the descriptors the CPU owns, plus an
/// eventfd through which other threads wake it. The CPU's dispatch loop calls <see cref="Poll"/> from its passes (a
/// bounded batch; no syscall while nothing is registered), and, when idle, <see cref="Park"/> with its earliest timer as
/// the timeout; a sender that claimed the Parked→Awake transition calls <see cref="Wake"/>. docs/io-integration.md has
/// the proposed hook points.
/// <para>
/// Ownership: everything but <see cref="Wake"/> belongs to the owner thread (the CPU thread); no member but
/// <see cref="Wake"/> synchronizes. <see cref="Dispose"/> is the owner's too (or anyone's once the owner has stopped).
/// </para>
/// <para>
/// No lost wake-up. The CPU's protocol (see <c>Cpu.Idle</c>/<c>Cpu.TryWake</c>) is unchanged: the owner stores Parked,
/// fences, re-checks for work and only then calls <see cref="Park"/>; a sender publishes its work, then claims the wake
/// with a CAS Parked→Awake and calls <see cref="Wake"/>. The futex parker relies on the kernel re-checking the state
/// word atomically with going to sleep. Here the eventfd's entry on the set's ready list plays that word. The eventfd
/// is in the set edge-triggered: each write to it is a new edge, which puts it on the ready list (under the set's
/// lock), and only an epoll_wait that returns it takes it off. So a wake written before the owner enters epoll_wait
/// makes that wait return at once (it checks the ready list under the same lock before sleeping), and a wake written
/// during the wait wakes it. Either way the owner returns, goes through its loop, and sees the work the sender
/// published before its CAS. A wake that <see cref="Poll"/> fetches (the owner was awake) is kept as a permit in
/// <see cref="_permit"/>, so the next <see cref="Park"/> returns at once, exactly like the parker's early Unpark. A
/// stale wake costs at most one early return, never a lost one.
/// </para>
/// <para>
/// Edge- rather than level-triggered so that a wake costs the waker's write and nothing more: a level-triggered
/// eventfd must be drained with a read(2) after each wake, one more syscall on the wake path. The counter is never
/// read; it would take 2^64 wakes to saturate it.
/// </para>
/// </summary>
[DebuggerDisplay("Reactor: {RegisteredCount} registered")]
internal sealed unsafe class Reactor : IDisposable
{
    /// <summary>The eventfd's epoll data: a key no registration can have (generations start at 1).</summary>
    private const ulong WakeKey = 0;

    /// <summary>Default epoll_wait batch: events fetched (and dispatched) by one <see cref="Park"/> at most.</summary>
    internal const int DefaultBatch = 256;

    private struct Slot
    {
        /// <summary>The handler, null while the slot is free.</summary>
        public IReadinessHandler? Handler;

        /// <summary>The registered handle (null when registered by number): tells <see cref="Unregister"/> whether it was closed.</summary>
        public SafeHandle? Handle;

        /// <summary>The descriptor number as registered.</summary>
        public int Fd;

        /// <summary>Current generation (never 0); bumped when the registration ends, so stale events and tokens miss.</summary>
        public uint Generation;

        /// <summary>Next free slot while free (-1 ends the list).</summary>
        public int NextFree;
    }

    /// <summary>The epoll set. Owner only.</summary>
    private readonly FileDescriptorHandle _epoll;

    /// <summary>The wake eventfd. Written by any waker (under a handle reference, so a concurrent Dispose cannot close it under the write); never read.</summary>
    private readonly FileDescriptorHandle _wakeFd;

    /// <summary>Kernel-filled epoll_event array (pinned: the kernel writes it during epoll_wait). Owner only.</summary>
    private readonly byte[] _bufferStorage;
    private readonly byte* _buffer;
    private readonly int _capacity;

    /// <summary>Entries of <see cref="_buffer"/> filled by the last epoll_wait, and the next one to dispatch. Owner only; kept in fields so that a throwing handler or a re-entrant call resumes where the batch stopped.</summary>
    private int _batchCount, _batchNext;

    /// <summary>Registration table indexed by the slot in the epoll data. Owner only; grows (doubling) on Register.</summary>
    private Slot[] _slots = new Slot[16];
    private int _freeHead = -1, _slotsUsed, _registered;

    /// <summary>A wake fetched by <see cref="Poll"/> that <see cref="Park"/> has not consumed yet. Owner only.</summary>
    private bool _permit;

    private bool _disposed;

    /// <summary>Creates the epoll set and the wake eventfd. Throws <see cref="PlatformNotSupportedException"/> where <see cref="Epoll.IsSupported"/> is false.</summary>
    /// <param name="batch">Most events one epoll_wait returns (the epoll_event array's length).</param>
    public Reactor(int batch = DefaultBatch)
    {
        if (!Epoll.IsSupported)
            throw new PlatformNotSupportedException("Reactor needs Linux epoll (x86-64 or arm64); on this platform use the Socket-based backend.");
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        int ep = Epoll.Create();
        if (ep < 0) throw Error("epoll_create1", Marshal.GetLastPInvokeError());
        _epoll = new FileDescriptorHandle(ep);
        int ev = Epoll.CreateEventFd();
        if (ev < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            _epoll.Dispose();
            throw Error("eventfd", errno);
        }
        _wakeFd = new FileDescriptorHandle(ev);
        // Edge-triggered: each write is one event, and nothing needs to be read back (the argument above).
        if (Epoll.Control(ep, Epoll.CtlAdd, ev, Epoll.In | Epoll.EdgeTriggered, WakeKey) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            _wakeFd.Dispose();
            _epoll.Dispose();
            throw Error("epoll_ctl(ADD eventfd)", errno);
        }
        _capacity = batch;
        _bufferStorage = GC.AllocateArray<byte>(batch * Epoll.EventSize, pinned: true);
        _buffer = (byte*)Unsafe.AsPointer(ref _bufferStorage[0]);
    }

    /// <summary>Descriptors registered (the wake eventfd not counted). The dispatch loop polls only when this is non-zero.</summary>
    public int RegisteredCount => _registered;

    /// <summary>True while events fetched from the kernel wait to be dispatched (a handler threw, or a call's budget ran out): the CPU must not sleep.</summary>
    public bool HasPendingEvents => _batchNext < _batchCount;

    /// <summary>epoll_wait calls made (owner-written; for tests and statistics).</summary>
    internal long WaitCalls { get; private set; }

    /// <summary>Events dispatched to handlers.</summary>
    internal long EventsDispatched { get; private set; }

    /// <summary>Events dropped because their registration had ended (unregistered, or its slot reused) after the kernel reported them.</summary>
    internal long StaleEvents { get; private set; }

    /// <summary>Wake events fetched (wakes written while one was still pending count once).</summary>
    internal long WakesReceived { get; private set; }

    // ------------------------------------------------------------------ registration (owner only)

    /// <summary>
    /// Registers a descriptor by its handle. The handle is referenced only during the call, not for the registration's
    /// lifetime: <see cref="System.Net.Sockets.Socket.Dispose()"/> waits for outstanding handle references, so holding
    /// one would hang a close. Unregister before closing; a handle closed while registered is dropped from the set by
    /// the kernel, and <see cref="Unregister"/> then only frees the slot.
    /// </summary>
    public ReactorRegistration Register(SafeHandle handle, IReadinessHandler handler, IoEvents events, ReactorTrigger trigger = ReactorTrigger.Edge)
    {
        ArgumentNullException.ThrowIfNull(handle);
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return RegisterCore((int)handle.DangerousGetHandle(), handle, handler, events, trigger);
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>
    /// Registers a raw descriptor. The caller must <see cref="Unregister"/> before closing it: the removal names the
    /// descriptor by number, and a number closed and reused elsewhere would be the wrong file.
    /// </summary>
    public ReactorRegistration Register(int fd, IReadinessHandler handler, IoEvents events, ReactorTrigger trigger = ReactorTrigger.Edge)
        => RegisterCore(fd, null, handler, events, trigger);

    private ReactorRegistration RegisterCore(int fd, SafeHandle? handle, IReadinessHandler handler, IoEvents events, ReactorTrigger trigger)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        int slot = AllocateSlot();
        ref Slot s = ref _slots[slot];
        var registration = new ReactorRegistration(slot, s.Generation);
        if (Epoll.Control(_epoll.Fd, Epoll.CtlAdd, fd, Mask(events, trigger), registration.Key) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            FreeSlot(slot);
            throw Error($"epoll_ctl(ADD) of fd {fd}", errno);
        }
        s.Handler = handler;
        s.Handle = handle;
        s.Fd = fd;
        _registered++;
        return registration;
    }

    /// <summary>Changes what a registration listens for (and re-arms a <see cref="ReactorTrigger.OneShot"/> one).</summary>
    public void Modify(ReactorRegistration registration, IoEvents events, ReactorTrigger trigger = ReactorTrigger.Edge)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!IsCurrent(registration))
            throw new InvalidOperationException("This reactor registration has ended (unregistered, or from another reactor): register the descriptor again.");
        ref Slot s = ref _slots[registration.Slot];
        if (s.Handle is { IsClosed: true })
            throw new ObjectDisposedException(s.Handle.GetType().Name, "The registered handle was closed: unregister it, and unregister before closing.");
        if (Epoll.Control(_epoll.Fd, Epoll.CtlMod, s.Fd, Mask(events, trigger), registration.Key) != 0)
            throw Error($"epoll_ctl(MOD) of fd {s.Fd}", Marshal.GetLastPInvokeError());
    }

    /// <summary>
    /// Ends a registration: its handler is never called again, not even for events already fetched from the kernel in
    /// the current batch (the generation check drops them). Returns false if it had already ended.
    /// </summary>
    public bool Unregister(ReactorRegistration registration)
    {
        if (_disposed || !IsCurrent(registration)) return false;
        ref Slot s = ref _slots[registration.Slot];
        // A closed handle has left the set already (the kernel drops a file's registrations when it is released).
        if (s.Handle is not { IsClosed: true } && Epoll.Control(_epoll.Fd, Epoll.CtlDel, s.Fd, 0, 0) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            // ENOENT/EBADF: the descriptor is gone already (closed by number); the slot must be freed all the same.
            if (errno is not (Epoll.ENoEnt or Epoll.EBadF))
                throw Error($"epoll_ctl(DEL) of fd {s.Fd}", errno);
        }
        FreeSlot(registration.Slot);
        _registered--;
        return true;
    }

    /// <summary>True while <paramref name="registration"/> names a live registration of this reactor.</summary>
    public bool IsCurrent(ReactorRegistration registration)
    {
        int slot = registration.Slot;
        Slot[] slots = _slots;
        return (uint)slot < (uint)slots.Length && slots[slot].Handler is not null && slots[slot].Generation == registration.Generation;
    }

    private int AllocateSlot()
    {
        int slot = _freeHead;
        if (slot >= 0)
        {
            _freeHead = _slots[slot].NextFree;
            return slot;
        }
        if (_slotsUsed == _slots.Length) Array.Resize(ref _slots, _slots.Length * 2);
        slot = _slotsUsed++;
        _slots[slot].Generation = 1;
        return slot;
    }

    private void FreeSlot(int slot)
    {
        ref Slot s = ref _slots[slot];
        s.Handler = null;
        s.Handle = null;
        s.Fd = -1;
        // A new generation: events and tokens carrying the old one no longer match. 0 is skipped (WakeKey, default).
        s.Generation = s.Generation == uint.MaxValue ? 1 : s.Generation + 1;
        s.NextFree = _freeHead;
        _freeHead = slot;
    }

    private static uint Mask(IoEvents events, ReactorTrigger trigger) => trigger switch
    {
        ReactorTrigger.Edge => (uint)events | Epoll.EdgeTriggered,
        ReactorTrigger.Level => (uint)events,
        ReactorTrigger.OneShot => (uint)events | Epoll.OneShot,
        _ => throw new ArgumentOutOfRangeException(nameof(trigger), trigger, "Edge, Level or OneShot."),
    };

    // ------------------------------------------------------------------ polling and parking (owner only)

    /// <summary>
    /// Dispatches up to <paramref name="maxEvents"/> ready descriptors without blocking: first what is left of an
    /// earlier batch, then one epoll_wait(timeout 0) for at most the rest. Makes no syscall when nothing is registered.
    /// Bounded, so a storm of readiness cannot starve the IPIs of the same pass. Returns the handlers called.
    /// </summary>
    public int Poll(int maxEvents)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (maxEvents <= 0) return 0;
        int done = 0;
        if (_batchNext < _batchCount)
        {
            done = Dispatch(maxEvents);
            if (done >= maxEvents || _batchNext < _batchCount) return done;
        }
        if (_registered == 0) return done;
        int n = Epoll.Wait(_epoll.Fd, _buffer, Math.Min(maxEvents - done, _capacity), 0);
        WaitCalls++;
        if (n < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Epoll.EIntr) return done; // a signal: nothing fetched, the next pass polls again
            throw Error("epoll_wait", errno);
        }
        _batchCount = n;
        _batchNext = 0;
        done += Dispatch(maxEvents - done);
        return done;
    }

    /// <summary>
    /// Sleeps in epoll_wait until a descriptor is ready, <see cref="Wake"/> is called, or <paramref name="timeoutNs"/>
    /// nanoseconds have passed (negative: no timeout); then dispatches up to <paramref name="maxEvents"/> of the
    /// readiness events it returns with and keeps the rest pending (<see cref="HasPendingEvents"/>) for
    /// <see cref="Poll"/>. With 0 it only waits: a CPU can then mark itself awake before any handler runs (senders
    /// stop paying for wakes) and dispatch in its next pass. Never returns early on a timeout: milliseconds are rounded
    /// up, and a wait cut short by a signal (EINTR) sleeps the rest. Returns at once, without a syscall, if events of an
    /// earlier batch are pending or a wake was already fetched by <see cref="Poll"/>. Returns the handlers called.
    /// </summary>
    public int Park(long timeoutNs, int maxEvents = int.MaxValue)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_batchNext < _batchCount) return Dispatch(maxEvents);
        if (_permit)
        {
            _permit = false;
            return 0;
        }
        long deadline = long.MaxValue;
        if (timeoutNs >= 0)
        {
            long start = Stopwatch.GetTimestamp(), span = NsToTimestamp(timeoutNs);
            if (span < long.MaxValue - start) deadline = start + span; // else: saturate (centuries)
        }
        int timeoutMs = ToTimeoutMs(timeoutNs);
        while (true)
        {
            int n = Epoll.Wait(_epoll.Fd, _buffer, _capacity, timeoutMs);
            WaitCalls++;
            if (n > 0)
            {
                _batchCount = n;
                _batchNext = 0;
                ConsumeWakeEntry();
                return Dispatch(maxEvents);
            }
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno != Epoll.EIntr) throw Error("epoll_wait", errno);
            }
            if (timeoutNs < 0) continue;
            // Timed out, or a signal cut the wait short: sleep whatever is left (the kernel and Stopwatch both use
            // CLOCK_MONOTONIC here, so this only loops after EINTR).
            long now = Stopwatch.GetTimestamp();
            if (now >= deadline) return 0;
            timeoutMs = ToTimeoutMs(TimestampToNs(deadline - now));
        }
    }

    /// <summary>
    /// Wakes the owner from <see cref="Park"/> (or makes its next park return at once). Any thread. Call it only after
    /// the work is published and the Parked→Awake transition claimed (the CPU's avoided-wake protocol): the write is a
    /// syscall, the expensive part of an IPI. The syscall is a full barrier, so the work published before it is
    /// visible to the owner once its epoll_wait returns. After <see cref="Dispose"/> it does nothing.
    /// </summary>
    public void Wake()
    {
        bool added = false;
        try
        {
            // The reference keeps the descriptor open across the write even if Dispose runs concurrently.
            _wakeFd.DangerousAddRef(ref added);
            // Each write is an edge (the counter only grows; EAGAIN would mean it is saturated, i.e. signalled anyway).
            Epoll.WriteEventFd(_wakeFd.Fd, 1);
        }
        catch (ObjectDisposedException)
        {
            // Disposed: nobody will park here again.
        }
        finally
        {
            if (added) _wakeFd.DangerousRelease();
        }
    }

    /// <summary>Dispatches entries of the current batch until <paramref name="budget"/> handlers ran or the batch ends.</summary>
    private int Dispatch(int budget)
    {
        int done = 0;
        byte* buffer = _buffer;
        while (done < budget)
        {
            // Fields, not locals: a handler may call Poll re-entrantly, which consumes (or refills) this same batch.
            int i = _batchNext;
            if (i >= _batchCount) break;
            _batchNext = i + 1; // before the call: a throwing handler does not see its event twice
            ulong key = Epoll.GetData(buffer, i);
            if (key == WakeKey)
            {
                NoteWake();
                continue;
            }
            var registration = new ReactorRegistration(key);
            int slot = registration.Slot;
            Slot[] slots = _slots;
            if ((uint)slot >= (uint)slots.Length || slots[slot].Generation != registration.Generation || slots[slot].Handler is not { } handler)
            {
                // Fetched before an Unregister in this batch (maybe with the slot already reused): not for anyone now.
                StaleEvents++;
                continue;
            }
            done++;
            EventsDispatched++;
            handler.OnReadiness(registration, (IoEvents)Epoll.GetEvents(buffer, i));
        }
        return done;
    }

    /// <summary>
    /// After a park's epoll_wait: the wake entry (at most one per batch: epoll reports a descriptor once per call) ended
    /// this park, so it is consumed here rather than left as a permit. It is swapped to the front of the batch and
    /// skipped, so that however few events this park dispatches, no later Poll mistakes it for a new wake.
    /// </summary>
    private void ConsumeWakeEntry()
    {
        byte* buffer = _buffer;
        int size = Epoll.EventSize;
        for (int i = 0; i < _batchCount; i++)
        {
            if (Epoll.GetData(buffer, i) != WakeKey) continue;
            // Entry 0 moves to the wake's place (its readiness is still dispatched, a little later); entry 0 is skipped.
            if (i != 0) Buffer.MemoryCopy(buffer, buffer + i * size, size, size);
            _batchNext = 1;
            WakesReceived++;
            return;
        }
    }

    /// <summary>The wake's event was fetched (owner only): remembered as a permit until a park consumes it.</summary>
    private void NoteWake()
    {
        // Nothing to read: the eventfd is edge-triggered, and fetching its event took it off the ready list. A wake
        // written after this point is a new edge, so the next epoll_wait returns at once: it cannot be lost.
        WakesReceived++;
        _permit = true;
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>Nanoseconds to epoll_wait's milliseconds, rounded up (a timer must never fire early); negative = -1 (forever).</summary>
    internal static int ToTimeoutMs(long timeoutNs)
    {
        if (timeoutNs < 0) return -1;
        long ms = timeoutNs / 1_000_000 + (timeoutNs % 1_000_000 != 0 ? 1 : 0);
        return ms > int.MaxValue ? int.MaxValue : (int)ms;
    }

    private static long NsToTimestamp(long ns)
    {
        if (Stopwatch.Frequency == 1_000_000_000) return ns;
        return (long)((double)ns * Stopwatch.Frequency / 1e9) + 1; // rounded up
    }

    private static long TimestampToNs(long ticks)
    {
        if (Stopwatch.Frequency == 1_000_000_000) return ticks;
        return (long)((double)ticks * 1e9 / Stopwatch.Frequency) + 1; // rounded up
    }

    private static Win32Exception Error(string call, int errno) =>
        new(errno, $"{call} failed ({Epoll.Describe(errno)}). EMFILE/ENFILE: raise the descriptor limit (ulimit -n); EPERM: the descriptor type does not support epoll (regular files).");

    /// <summary>Closes the epoll set and the eventfd (owner only, or after the owner stopped). Registered descriptors stay open: they belong to their owners.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Array.Clear(_slots);
        _registered = 0;
        _batchCount = _batchNext = 0;
        _epoll.Dispose();
        _wakeFd.Dispose(); // a concurrent Wake holding a reference defers the close to its release
    }
}
