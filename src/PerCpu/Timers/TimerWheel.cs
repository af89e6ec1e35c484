using System.Diagnostics;
using System.Numerics;

namespace PerCpu.Timers;

/// <summary>
/// One CPU's timers: a hashed hierarchical timing wheel (Varghese &amp; Lauck 1987, scheme 7; the shape of NetBSD's
/// callout(9) and of Linux's timer wheel before 4.8). <see cref="Levels"/> levels of 64 slots; level 0's slots are one
/// tick each (<c>resolution</c>, 1 ms by default), level l's slots 64^l ticks. A timer goes into the level whose span
/// covers its distance from the current tick; when time reaches the start of a higher-level slot, that slot's timers
/// cascade down into finer slots. Adding and removing are O(1) (plus a short walk to keep level-0 slots sorted by due
/// time); advancing skips empty stretches with the per-level occupancy bitmaps, so an idle gap of hours costs a few
/// iterations, not one per tick.
/// <para>
/// Never early: a node fires only when <see cref="Advance"/> is given a time at or after its exact due timestamp
/// (level 0 compares the timestamps themselves, the slots are only the index). Within a slot nodes fire in due order,
/// ties in arming order; slots fire in time order.
/// </para>
/// <para>
/// Owner-only: every member is called on the owning CPU's thread; nothing here synchronizes. Intrusive: the links
/// live in the <see cref="TimerNode"/>s, so arming, re-arming, cancelling and firing allocate nothing.
/// </para>
/// </summary>
[DebuggerDisplay("TimerWheel: {Count} armed, tick {CurrentTick}")]
internal sealed class TimerWheel
{
    private const int SlotBits = 6, SlotsPerLevel = 1 << SlotBits, SlotMask = SlotsPerLevel - 1;

    /// <summary>Levels of 64 slots: at 1 ms per tick, 64^6 ticks ≈ 2.2 years; farther timers wait at the top level and cascade again.</summary>
    internal const int Levels = 6;

    /// <summary>Index in <see cref="_heads"/> of the expired list: nodes taken off the wheel by an Advance and not fired yet.</summary>
    private const int ExpiredList = Levels * SlotsPerLevel;

    /// <summary>Largest distance a node is placed at; beyond it, it is placed here and cascades again later (never early: level 0 compares real due times).</summary>
    private const long MaxDelta = (1L << (SlotBits * Levels)) - 1;

    /// <summary>Heads of the circular doubly-linked lists: level l slot s at l*64+s, then the expired list.</summary>
    private readonly TimerNode?[] _heads = new TimerNode?[Levels * SlotsPerLevel + 1];

    /// <summary>Per level, bit s set while slot s is non-empty: finds the next busy slot without scanning.</summary>
    private readonly ulong[] _occupied = new ulong[Levels];

    /// <summary>Timestamp units per tick.</summary>
    private readonly long _resolution;

    /// <summary>The current tick: every tick before it is fully processed; level-0 slot of this tick may still hold nodes due later within the tick.</summary>
    private long _current;

    private int _count;

    /// <summary>A wheel with 1 ms ticks starting now.</summary>
    public TimerWheel() : this(Stopwatch.GetTimestamp(), Stopwatch.Frequency / 1000)
    {
    }

    /// <param name="startTimestamp">The time the wheel starts at (nodes due before it are due at once).</param>
    /// <param name="resolution">Timestamp units per level-0 slot (<see cref="Stopwatch.Frequency"/> / 1000 for 1 ms).</param>
    public TimerWheel(long startTimestamp, long resolution)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(resolution, 1);
        _resolution = resolution;
        _current = TickOf(startTimestamp);
    }

    /// <summary>Nodes armed (including expired ones not fired yet).</summary>
    public int Count => _count;

    /// <summary>Timestamp units per tick.</summary>
    public long Resolution => _resolution;

    /// <summary>The current tick (timestamp / resolution), for diagnostics.</summary>
    internal long CurrentTick => _current;

    /// <summary>Nodes fired since creation.</summary>
    internal long Fired { get; private set; }

    /// <summary>Nodes moved down a level by cascades since creation (each far timer cascades at most once per level).</summary>
    internal long Cascaded { get; private set; }

    // ------------------------------------------------------------------ arming

    /// <summary>
    /// Arms <paramref name="node"/> to fire at or after <paramref name="dueTimestamp"/>; re-arms it if it is armed
    /// (also from inside its own <see cref="TimerNode.Fire"/>). A due time in the past fires at the next
    /// <see cref="Advance"/>. Allocates nothing.
    /// </summary>
    public void Add(TimerNode node, long dueTimestamp)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (node.IsArmed)
        {
            if (!ReferenceEquals(node.Wheel, this))
                throw new InvalidOperationException("This timer is armed on another CPU's wheel: stop it there (on that CPU) before arming it here.");
            Unlink(node);
            _count--;
        }
        node.Due = dueTimestamp;
        node.Wheel = this;
        Place(node);
        _count++;
    }

    /// <summary>Disarms <paramref name="node"/>: it will not fire (even if it expired in an Advance still running). Returns false if it was not armed.</summary>
    public bool Remove(TimerNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (!node.IsArmed) return false;
        if (!ReferenceEquals(node.Wheel, this))
            throw new InvalidOperationException("This timer is armed on another CPU's wheel: stop it on that CPU.");
        Unlink(node);
        node.Wheel = null;
        _count--;
        return true;
    }

    /// <summary>
    /// Disarms and returns one armed node (any), or null when none is left: the owner empties its wheel this way when
    /// its CPU stops for good. O(slots) per call: for shutdown, not for a hot path.
    /// </summary>
    internal TimerNode? TakeAny()
    {
        if (_count == 0) return null;
        foreach (TimerNode? head in _heads)
        {
            if (head is null) continue;
            Unlink(head);
            head.Wheel = null;
            _count--;
            return head;
        }
        return null;
    }

    // ------------------------------------------------------------------ time

    /// <summary>
    /// A time to wake up for the next timer: never later than the earliest due time, exactly it when that timer is in
    /// the finest level, else the start of the higher-level slot that holds it (the Advance there cascades it, and the
    /// next call is exact). O(levels); the CPU asks before every park. False when nothing is armed.
    /// </summary>
    public bool TryGetNextDeadline(out long timestamp)
    {
        if (_count == 0)
        {
            timestamp = 0;
            return false;
        }
        if (_heads[ExpiredList] is { } expired)
        {
            timestamp = expired.Due; // due already: an Advance was cut short
            return true;
        }
        long best = long.MaxValue;
        ulong bits = _occupied[0];
        if (bits != 0)
        {
            // Level-0 slots from the current one on cover consecutive ticks; the first busy one's head is the earliest.
            int c = (int)(_current & SlotMask);
            int d = BitOperations.TrailingZeroCount(BitOperations.RotateRight(bits, c));
            best = _heads[(c + d) & SlotMask]!.Due;
        }
        for (int level = 1; level < Levels; level++)
        {
            if (_occupied[level] == 0) continue;
            long start = NextSlotStart(level) * _resolution;
            if (start < best) best = start;
        }
        timestamp = best;
        return true;
    }

    /// <summary>
    /// Fires every node due at or before <paramref name="now"/>, at most <paramref name="budget"/> of them (what the
    /// budget leaves fires on the next call), never one due later. A node that a <see cref="TimerNode.Fire"/> re-arms
    /// for a time at or before <paramref name="now"/> may fire in this call while the wheel still has ticks to cross
    /// before <paramref name="now"/>'s, else it fires in the next call: an Advance never loops on a node that keeps
    /// re-arming into the past (a periodic timer that fell behind catches up over the next calls). Returns the count fired.
    /// </summary>
    public int Advance(long now, int budget)
    {
        if (budget <= 0) return 0;
        int fired = FireExpired(budget);
        if (fired >= budget) return fired;
        long nowTick = TickOf(now);
        while (true)
        {
            int slot = (int)(_current & SlotMask);
            MoveDue(slot, now, budget - fired);
            bool advanced = false;
            if (_current < nowTick && _heads[slot] is null)
            {
                // Move on before firing, so that a node re-armed by its Fire lands in a slot still ahead of us.
                _current = NextEventTick(nowTick);
                Cascade();
                advanced = true;
            }
            fired += FireExpired(budget - fired);
            if (fired >= budget || !advanced) return fired;
        }
    }

    // ------------------------------------------------------------------ internals

    /// <summary>Floor division (without overflow at <see cref="long.MinValue"/>): a tick's timestamps all map to it.</summary>
    private long TickOf(long timestamp) => timestamp / _resolution - (timestamp % _resolution < 0 ? 1 : 0);

    /// <summary>Puts an idle node into the slot its due time calls for, relative to the current tick.</summary>
    private void Place(TimerNode node)
    {
        long tick = TickOf(node.Due);
        long delta = tick - _current;
        if (delta < SlotsPerLevel)
        {
            // Due within 64 ticks (or already): level 0, sorted, so the current slot can be fired up to "now" exactly.
            InsertSorted((int)((delta <= 0 ? _current : tick) & SlotMask), node);
            return;
        }
        if (delta > MaxDelta)
        {
            delta = MaxDelta;
            tick = _current + MaxDelta;
        }
        // The level whose slots span the distance: 64^level <= delta < 64^(level+1).
        int level = (63 - BitOperations.LeadingZeroCount((ulong)delta)) / SlotBits;
        Append(level * SlotsPerLevel + (int)((tick >> (level * SlotBits)) & SlotMask), node);
    }

    /// <summary>Moves the due prefix of level-0 slot <paramref name="slot"/> (at most <paramref name="max"/> nodes) to the expired list, in order.</summary>
    private void MoveDue(int slot, long now, int max)
    {
        for (int moved = 0; moved < max && _heads[slot] is { } head && head.Due <= now; moved++)
        {
            Unlink(head);
            Append(ExpiredList, head);
        }
    }

    /// <summary>Fires up to <paramref name="max"/> nodes from the expired list. A throwing Fire leaves the rest there for the next Advance.</summary>
    private int FireExpired(int max)
    {
        int fired = 0;
        while (fired < max && _heads[ExpiredList] is { } node)
        {
            Unlink(node);
            node.Wheel = null;
            _count--;
            fired++;
            Fired++;
            node.Fire();
        }
        return fired;
    }

    /// <summary>
    /// The first tick after the current one at which a level-0 slot is busy or a busy higher slot must cascade, or
    /// <paramref name="limit"/> if that is sooner. Every tick skipped has nothing to fire and nothing to cascade.
    /// </summary>
    private long NextEventTick(long limit)
    {
        long best = limit;
        for (int level = 0; level < Levels; level++)
        {
            if (_occupied[level] == 0) continue;
            long tick = NextSlotStart(level);
            if (tick < best) best = tick;
        }
        return best;
    }

    /// <summary>
    /// The tick at which the next busy slot of <paramref name="level"/> after the current position comes up (is fired,
    /// at level 0, or cascades): 1 to 64 slots ahead. A node is placed at most 64 slots ahead of the current block, so the
    /// first time its slot index comes up again is its time; the current block's own index means 64 slots on.
    /// </summary>
    private long NextSlotStart(int level)
    {
        int shift = level * SlotBits;
        long block = _current >> shift;
        int c = (int)(block & SlotMask);
        // Bit k of the rotated map is slot (c + 1 + k) & 63. (A rotation by 64 is one by 0: the shift count is masked.)
        int d = BitOperations.TrailingZeroCount(BitOperations.RotateRight(_occupied[level], c + 1)) + 1;
        return (block + d) << shift;
    }

    /// <summary>At a new current tick: moves the nodes of each higher-level slot that starts here down to finer slots (highest level first).</summary>
    private void Cascade()
    {
        for (int level = Levels - 1; level >= 1; level--)
        {
            int shift = level * SlotBits;
            if ((_current & ((1L << shift) - 1)) != 0) continue;
            int index = level * SlotsPerLevel + (int)((_current >> shift) & SlotMask);
            TimerNode? node = _heads[index];
            if (node is null) continue;
            _heads[index] = null;
            _occupied[level] &= ~(1UL << (index & SlotMask));
            node.Prev!.Next = null; // open the circle; walk it as a chain
            while (node is not null)
            {
                TimerNode? next = node.Next;
                node.Next = node.Prev = null;
                node.Where = TimerNode.Idle;
                Place(node);
                Cascaded++;
                node = next;
            }
        }
    }

    private void InsertSorted(int index, TimerNode node)
    {
        TimerNode? head = _heads[index];
        if (head is null)
        {
            LinkAlone(index, node);
            return;
        }
        // From the tail: timers are mostly armed in due order, so this is usually one comparison. Equal due times keep
        // arming order.
        TimerNode after = head.Prev!;
        while (after.Due > node.Due)
        {
            if (ReferenceEquals(after, head))
            {
                LinkAfter(head.Prev!, node, index);
                _heads[index] = node;
                return;
            }
            after = after.Prev!;
        }
        LinkAfter(after, node, index);
    }

    private void Append(int index, TimerNode node)
    {
        TimerNode? head = _heads[index];
        if (head is null) LinkAlone(index, node);
        else LinkAfter(head.Prev!, node, index);
    }

    private void LinkAlone(int index, TimerNode node)
    {
        node.Next = node.Prev = node;
        node.Where = index;
        _heads[index] = node;
        if (index < ExpiredList) _occupied[index >> SlotBits] |= 1UL << (index & SlotMask);
    }

    private static void LinkAfter(TimerNode after, TimerNode node, int index)
    {
        TimerNode next = after.Next!;
        node.Prev = after;
        node.Next = next;
        next.Prev = node;
        after.Next = node;
        node.Where = index;
    }

    private void Unlink(TimerNode node)
    {
        int index = node.Where;
        Debug.Assert(index != TimerNode.Idle);
        if (ReferenceEquals(node.Next, node))
        {
            _heads[index] = null;
            if (index < ExpiredList) _occupied[index >> SlotBits] &= ~(1UL << (index & SlotMask));
        }
        else
        {
            node.Prev!.Next = node.Next;
            node.Next!.Prev = node.Prev;
            if (ReferenceEquals(_heads[index], node)) _heads[index] = node.Next;
        }
        node.Next = node.Prev = null;
        node.Where = TimerNode.Idle;
    }
}
