using System.Diagnostics;
using PerCpu.Io;
using PerCpu.Net;

namespace PerCpu;

// The reactor in the dispatch loop (issue 12, docs/io-integration.md): each CPU that owns descriptors polls its epoll
// set between the IPIs and the soft interrupts (the hard interrupt before the soft ones it schedules), and sleeps in
// epoll_wait instead of its futex when idle. Readiness handlers only note the event and queue the endpoint on this
// CPU's softnet list; the work (recv, send, accept, completing the awaiter) runs in softnet at SoftLevel.Net.
public sealed partial class Cpu
{
    /// <summary>Most readiness events one pass dispatches: a storm of readiness cannot starve the IPIs.</summary>
    private const int IoBatch = 64;

    /// <summary>While polls find nothing, a busy CPU polls every this many passes (epoll_wait(0) is a ~1.5 µs syscall here).</summary>
    private const int IoPollEvery = 8;

    /// <summary>
    /// This CPU's reactor, created by the owner at its first registration (where epoll exists) and kept until the
    /// thread exits. Written once by the owner while Awake, so program-ordered before its next release store of
    /// Parked; read by the owner, and by a waker only through <see cref="_parkInReactor"/>.
    /// </summary>
    private Reactor? _reactor;

    /// <summary>
    /// Where the owner sleeps in its current park: written by the owner before its release store of Parked, read by the
    /// waker after its CAS (or Exchange) on the state read that Parked value, so the two always agree (see
    /// <see cref="WakeParked"/>).
    /// </summary>
    private bool _parkInReactor;

    /// <summary>True while the owner is inside epoll_wait (tests, the stall watchdog: <see cref="IsAsleep"/>). Owner writes, anyone reads racily.</summary>
    private volatile bool _sleepingInReactor;

    /// <summary>Endpoints (connections, listeners) with readiness to process at the Net level, FIFO. Owner only.</summary>
    private INetEndpoint? _netHead, _netTail;

    /// <summary>Every open endpoint owned by this CPU (to shut down and close with the runtime). Owner only.</summary>
    private readonly HashSet<INetEndpoint> _endpoints = new(ReferenceEqualityComparer.Instance);

    /// <summary>Set on this CPU when the runtime's disposal began: listeners are closed, receives end. Owner only.</summary>
    private bool _ioShutdown;

    internal readonly Diagnostics.IoCounters IoCounters = new();

    /// <summary>This CPU's socket and timer counters (totals since the runtime started). Any thread; a moment old.</summary>
    public CpuIoStatistics GetIoStatistics() => IoCounters.Snapshot();

    /// <summary>This CPU's reactor, created at first use. Owner only; throws <see cref="PlatformNotSupportedException"/> without epoll.</summary>
    internal Reactor Reactor
    {
        get
        {
            Debug.Assert(t_current == this);
            return _reactor ??= new Reactor();
        }
    }

    /// <summary>True if readiness events wait to be dispatched (a handler threw, or the batch budget ran out).</summary>
    private bool HasPendingIo => _reactor is { HasPendingEvents: true };

    /// <summary>
    /// The pass's hard interrupt: dispatches a bounded batch of readiness events; each handler queues its endpoint for
    /// softnet. No syscall while nothing is registered; while polls find nothing, only every <see cref="IoPollEvery"/>
    /// passes (an idle CPU does not depend on this: it sleeps in epoll_wait).
    /// </summary>
    private bool PollIo()
    {
        Reactor? reactor = _reactor;
        if (reactor is null) return false;
        if (!reactor.HasPendingEvents)
        {
            if (reactor.RegisteredCount == 0) return false;
            if (!Own.LastPollFound && ++Own.PassesSincePoll < IoPollEvery) return false;
        }
        Own.PassesSincePoll = 0;
        int n = reactor.Poll(IoBatch);
        Own.LastPollFound = n != 0;
        return n != 0;
    }

    /// <summary>In the idle spin: one poll (a syscall), so that readiness ends the spin without a park.</summary>
    private bool PollIoWhileIdle()
    {
        if (_reactor is not { RegisteredCount: > 0 } reactor || IsInterlocked()) return false;
        int n = reactor.Poll(IoBatch);
        Own.LastPollFound = n != 0;
        return n != 0;
    }

    /// <summary>
    /// Sleeps in epoll_wait until a descriptor is ready, a waker writes the eventfd, or the timeout. It only waits
    /// (maxEvents 0): the CPU flips back to Awake before any handler runs, so senders stop paying for wakes while it
    /// dispatches; the fetched events wait in the reactor's batch for the next pass.
    /// </summary>
    private void ParkInReactor(Reactor reactor, TimeSpan timeout)
    {
        long ns = timeout == Timeout.InfiniteTimeSpan ? -1 : timeout.Ticks * 100;
        _sleepingInReactor = true;
        try
        {
            reactor.Park(ns, maxEvents: 0);
        }
        finally
        {
            _sleepingInReactor = false;
        }
    }

    /// <summary>
    /// Wakes whichever sleeper the owner parks in. Called only by the thread that moved the state from Parked (a CAS in
    /// <see cref="TryWake"/>, an Exchange in <see cref="ForceWake"/>). The owner wrote <see cref="_parkInReactor"/>
    /// before its release store of Parked, and our interlocked read of that Parked value is a full fence, so we read the
    /// choice the owner made for this park, or a later one: the owner writes the field again only in a later Idle, after
    /// this park has ended (a timeout, events), and then our wake lands on a park that nobody claimed and only makes it
    /// return early. Each park's wake is claimed by exactly one CAS, so none is lost. The no-lost-wake-up property of
    /// the sleep itself comes from each sleeper's permit: the futex
    /// parker's state word, or the reactor's edge-triggered eventfd (see <see cref="Io.Reactor"/>): a wake issued after
    /// the owner stored Parked makes its park return, whether it comes before or during the sleep.
    /// </summary>
    private void WakeParked()
    {
        if (_parkInReactor) _reactor!.Wake();
        else _parker.Unpark();
    }

    // ------------------------------------------------------------------ softnet (SoftLevel.Net)

    /// <summary>Owner: queues <paramref name="endpoint"/> for softnet (once while queued) and schedules softnet on this CPU.</summary>
    internal void QueueSoftNet(INetEndpoint endpoint)
    {
        Debug.Assert(t_current == this);
        if (endpoint.NetQueued) return;
        endpoint.NetQueued = true;
        endpoint.NetNext = null;
        if (_netTail is null) _netHead = endpoint;
        else _netTail.NetNext = endpoint;
        _netTail = endpoint;
        ScheduleSoftInterrupt(_shared.GetSoftNet(Runtime));
    }

    /// <summary>Most endpoints one softnet run processes; the rest wait for the next pass (after the IPIs).</summary>
    private const int SoftNetBatch = 64;

    /// <summary>
    /// Softnet (NetBSD's <c>softnet</c> at <c>SOFTINT_NET</c>): processes the endpoints whose readiness the reactor
    /// reported: receives, sends, accepts, and completes their awaiters (whose continuations then run on this CPU).
    /// </summary>
    internal void RunSoftNet()
    {
        for (int i = 0; i < SoftNetBatch; i++)
        {
            INetEndpoint? endpoint = _netHead;
            if (endpoint is null) return;
            _netHead = endpoint.NetNext;
            if (_netHead is null) _netTail = null;
            endpoint.NetNext = null;
            endpoint.NetQueued = false;
            Trace?.Record(Diagnostics.TraceEvent.IoReady, Id, Id, null, _endpoints.Count);
            Own.Running = endpoint; // stall watchdog
            try
            {
                endpoint.OnSoftNet();
            }
            catch (Exception e)
            {
                ReportException(e, ExternalSource);
            }
        }
        if (_netHead is not null) ScheduleSoftInterrupt(_shared.GetSoftNet(Runtime)); // more next pass
    }

    // ------------------------------------------------------------------ endpoints

    /// <summary>Owner: a new endpoint of this CPU (closed with the runtime if its owner does not close it).</summary>
    internal void AddEndpoint(INetEndpoint endpoint)
    {
        Debug.Assert(t_current == this);
        _endpoints.Add(endpoint);
        if (_ioShutdown) endpoint.OnShutdown();
    }

    /// <summary>Owner: the endpoint was closed.</summary>
    internal void RemoveEndpoint(INetEndpoint endpoint) => _endpoints.Remove(endpoint);

    /// <summary>Open endpoints on this CPU (tests). Owner, or once the CPU is idle.</summary>
    internal int EndpointCount => _endpoints.Count;

    /// <summary>
    /// Owner, at the start of the runtime's disposal: listeners stop accepting and close; connections stop receiving
    /// (pending and later receives end with <see cref="OperationCanceledException"/>, their <see cref="CpuConnection.Closing"/>
    /// token is cancelled); sends go on, so replies already handed over reach the peer.
    /// </summary>
    internal void ShutdownIo()
    {
        Debug.Assert(t_current == this);
        if (_ioShutdown) return;
        _ioShutdown = true;
        ForEachEndpoint(static endpoint => endpoint.OnShutdown());
    }

    /// <summary>The CPU thread is exiting: closes what is still open (the runtime is gone; nobody can use it) and the reactor.</summary>
    private void CloseIo()
    {
        ForEachEndpoint(static endpoint => endpoint.Abort());
        _endpoints.Clear();
        _reactor?.Dispose();
    }

    /// <summary>Owner: runs <paramref name="action"/> on a snapshot of the open endpoints (it may close them); an exception is reported and the others go on.</summary>
    private void ForEachEndpoint(Action<INetEndpoint> action)
    {
        if (_endpoints.Count == 0) return;
        INetEndpoint[] endpoints = [.. _endpoints];
        foreach (INetEndpoint endpoint in endpoints)
        {
            try
            {
                action(endpoint);
            }
            catch (Exception e)
            {
                ReportException(e, ExternalSource);
            }
        }
    }
}
