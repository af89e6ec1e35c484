using System.Buffers.Binary;
using System.Diagnostics;
using PerCpu.Kv.Protocol;
using PerCpu.Kv.Server;

namespace PerCpu.Kv.Store;

/// <summary>
/// One CPU's part of the key space: the keys k with hash(k) mod N = this shard, in a dictionary only this CPU touches
/// (no locks: every access runs on <see cref="Cpu"/>). Executes the pieces of connections' batches
/// (<see cref="ShardBatch"/>) and expires keys lazily on access and actively on a <see cref="CpuTimer"/>, sampling as
/// Redis's activeExpireCycle does.
/// </summary>
internal sealed partial class Shard
{
    /// <summary>How often the active expiry cycle runs (Redis's default hz 10).</summary>
    internal static readonly TimeSpan ExpiryPeriod = TimeSpan.FromMilliseconds(100);

    /// <summary>Keys sampled per round (Redis: ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP).</summary>
    private const int SamplesPerRound = 20;

    /// <summary>The longest a cycle may run before it yields the CPU to requests.</summary>
    private static readonly long MaxCycleTicks = Stopwatch.Frequency / 40; // 25 ms, as Redis's slow cycle

    private readonly Dictionary<byte[], KvEntry> _dict = new(ByteKeyComparer.Instance);
    private readonly Dictionary<byte[], KvEntry>.AlternateLookup<ReadOnlySpan<byte>> _lookup;
    private readonly TimeProvider _time;

    /// <summary>The keys that have an expiry, for random sampling (an entry knows its index: O(1) removal).</summary>
    private KvEntry[] _volatile = new KvEntry[64];
    private int _volatileCount;
    private readonly Random _random = new(17);
    private CpuTimer? _expiryTimer;

    /// <summary>The current batch's input, while <see cref="Execute"/> runs.</summary>
    private byte[] _input = [];
    private ArgList _args = null!;

    /// <summary>Creates shard <paramref name="id"/> on <paramref name="cpu"/>.</summary>
    public Shard(int id, Cpu cpu, TimeProvider time)
    {
        Id = id;
        Cpu = cpu;
        _time = time;
        _lookup = _dict.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    /// <summary>The shard's number (= its CPU's id).</summary>
    public int Id { get; }

    /// <summary>The CPU that owns this shard.</summary>
    public Cpu Cpu { get; }

    /// <summary>Keys held (expired ones not yet reclaimed included, as Redis's DBSIZE).</summary>
    public int Count => _dict.Count;

    /// <summary>Keys that have an expiry.</summary>
    public int VolatileCount => _volatileCount;

    /// <summary>Lookups that found their key (owner writes; INFO reads it on the owner).</summary>
    public long Hits;

    /// <summary>Lookups that did not.</summary>
    public long Misses;

    /// <summary>Keys removed because they expired (lazily or by the cycle).</summary>
    public long ExpiredKeys;

    /// <summary>Pieces of commands run.</summary>
    public long Commands;

    /// <summary>Starts the active expiry timer. On <see cref="Cpu"/>.</summary>
    public void Start()
    {
        _expiryTimer = new CpuTimer(Cpu, static s => ((Shard)s!).ActiveExpireCycle(), this);
        _expiryTimer.Start(ExpiryPeriod);
    }

    /// <summary>Stops the timer. On <see cref="Cpu"/>.</summary>
    public void Stop() => _expiryTimer?.Dispose();

    /// <summary>Unix time in milliseconds.</summary>
    public long Now() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>
    /// Redis's activeExpireCycle: sample keys with an expiry, delete the expired ones, and go on while more than a
    /// quarter of a sample was expired (many stale keys) and the cycle's time budget lasts.
    /// </summary>
    internal void ActiveExpireCycle()
    {
        long now = Now();
        long start = Stopwatch.GetTimestamp();
        while (_volatileCount > 0)
        {
            int sampled = Math.Min(SamplesPerRound, _volatileCount);
            int expired = 0;
            for (int i = 0; i < sampled && _volatileCount > 0; i++)
            {
                KvEntry e = _volatile[_random.Next(_volatileCount)];
                if (e.ExpireAt <= now)
                {
                    Remove(e);
                    ExpiredKeys++;
                    expired++;
                }
            }
            if (expired * 4 <= sampled || Stopwatch.GetTimestamp() - start > MaxCycleTicks) break;
        }
        _expiryTimer?.Start(ExpiryPeriod);
    }

    // ---- the table ----

    /// <summary>The live entry of <paramref name="key"/>, deleting it first if it has expired (lazy expiry).</summary>
    private KvEntry? Find(ReadOnlySpan<byte> key, long now)
    {
        if (!_lookup.TryGetValue(key, out KvEntry? e)) return null;
        if (e.ExpireAt != 0 && e.ExpireAt <= now)
        {
            Remove(e);
            ExpiredKeys++;
            return null;
        }
        return e;
    }

    private KvEntry Insert(ReadOnlySpan<byte> key, object value)
    {
        byte[] k = key.ToArray();
        var e = new KvEntry(k, value);
        _dict.Add(k, e);
        return e;
    }

    private void Remove(KvEntry e)
    {
        SetExpire(e, 0);
        _dict.Remove(e.Key);
    }

    /// <summary>Sets (at &gt; 0) or clears (0) the expiry, keeping the sampling table in step.</summary>
    private void SetExpire(KvEntry e, long at)
    {
        if (at == 0)
        {
            if (e.VolatileIndex >= 0)
            {
                int last = --_volatileCount;
                KvEntry moved = _volatile[last];
                _volatile[e.VolatileIndex] = moved;
                moved.VolatileIndex = e.VolatileIndex;
                _volatile[last] = null!;
                e.VolatileIndex = -1;
            }
        }
        else if (e.VolatileIndex < 0)
        {
            if (_volatileCount == _volatile.Length) Array.Resize(ref _volatile, _volatileCount * 2);
            e.VolatileIndex = _volatileCount;
            _volatile[_volatileCount++] = e;
        }
        e.ExpireAt = at;
    }

    /// <summary>Stores a string: in place when the old string has the same length (no allocation on overwrite).</summary>
    private KvEntry SetString(ReadOnlySpan<byte> key, KvEntry? e, ReadOnlySpan<byte> value)
    {
        if (e == null) return Insert(key, value.ToArray());
        if (e.Value is byte[] old && old.Length == value.Length) value.CopyTo(old);
        else e.Value = value.ToArray();
        return e;
    }

    /// <summary>Removes every key.</summary>
    private void Clear()
    {
        _dict.Clear();
        Array.Clear(_volatile, 0, _volatileCount);
        _volatileCount = 0;
    }

    // ---- execution ----

    /// <summary>Runs every piece of <paramref name="batch"/> in order, writing each reply into the batch. On <see cref="Cpu"/>.</summary>
    public void Execute(ShardBatch batch)
    {
        Debug.Assert(Cpu.Current == Cpu, "a shard is touched only by its own CPU");
        _input = batch.Input;
        _args = batch.Args;
        ReplyBuffer r = batch.Reply;
        long now = Now();
        SubCommand[] subs = batch.Subs;
        for (int i = 0; i < batch.Count; i++)
        {
            ref SubCommand s = ref subs[i];
            int start = r.Length;
            try
            {
                Run(ref s, r, now);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A bug in one command must not take the batch (or the CPU) with it: the client gets an error.
                r.Length = start;
                r.Error("ERR internal error: " + e.Message);
            }
            s.ReplyStart = start;
            s.ReplyLength = r.Length - start;
        }
        Commands += batch.Count;
        _input = [];
        _args = null!;
    }

    private ReadOnlySpan<byte> Arg(ref SubCommand s, int i) => _args.Get(_input, s.Arg + i);

    private void Run(ref SubCommand s, ReplyBuffer r, long now)
    {
        switch (s.Id)
        {
            case CommandId.Get: Get(ref s, r, now); break;
            case CommandId.MGet: MGetPiece(ref s, r, now); break;
            case CommandId.Set: Set(ref s, r, now); break;
            case CommandId.GetSet: GetSet(ref s, r, now); break;
            case CommandId.GetDel: GetDel(ref s, r, now); break;
            case CommandId.SetNx: SetNx(ref s, r, now); break;
            case CommandId.SetEx: SetEx(ref s, r, now, 1000, "ERR invalid expire time in 'setex' command"); break;
            case CommandId.PSetEx: SetEx(ref s, r, now, 1, "ERR invalid expire time in 'psetex' command"); break;
            case CommandId.Append: Append(ref s, r, now); break;
            case CommandId.Strlen: Strlen(ref s, r, now); break;
            case CommandId.Incr: IncrBy(ref s, r, now, 1); break;
            case CommandId.Decr: IncrBy(ref s, r, now, -1); break;
            case CommandId.IncrBy: IncrByArg(ref s, r, now, negate: false); break;
            case CommandId.DecrBy: IncrByArg(ref s, r, now, negate: true); break;
            case CommandId.Expire: Expire(ref s, r, now, now, 1000, "ERR invalid expire time in 'expire' command"); break;
            case CommandId.PExpire: Expire(ref s, r, now, now, 1, "ERR invalid expire time in 'pexpire' command"); break;
            case CommandId.ExpireAt: Expire(ref s, r, now, 0, 1000, "ERR invalid expire time in 'expireat' command"); break;
            case CommandId.PExpireAt: Expire(ref s, r, now, 0, 1, "ERR invalid expire time in 'pexpireat' command"); break;
            case CommandId.Ttl: Ttl(ref s, r, now, seconds: true); break;
            case CommandId.PTtl: Ttl(ref s, r, now, seconds: false); break;
            case CommandId.Persist: Persist(ref s, r, now); break;
            case CommandId.Type: Type(ref s, r, now); break;
            case CommandId.LPush: Push(ref s, r, now, head: true); break;
            case CommandId.RPush: Push(ref s, r, now, head: false); break;
            case CommandId.LPop: Pop(ref s, r, now, head: true); break;
            case CommandId.RPop: Pop(ref s, r, now, head: false); break;
            case CommandId.LRange: LRange(ref s, r, now); break;
            case CommandId.LLen: LLen(ref s, r, now); break;
            case CommandId.Del:
            case CommandId.Unlink:
            {
                KvEntry? e = Find(Arg(ref s, 0), now);
                if (e != null) Remove(e);
                s.N1 = e != null ? 1 : 0;
                break;
            }
            case CommandId.Exists:
                s.N1 = Find(Arg(ref s, 0), now) != null ? 1 : 0;
                break;
            case CommandId.MSet:
            {
                ReadOnlySpan<byte> key = Arg(ref s, 0);
                SetExpire(SetString(key, Find(key, now), Arg(ref s, 1)), 0);
                break;
            }
            case CommandId.DbSize: s.N1 = _dict.Count; break;
            case CommandId.FlushDb:
            case CommandId.FlushAll: Clear(); break;
            case CommandId.Keys: Keys(ref s, r, now); break;
            case CommandId.Scan: Scan(ref s, r, now); break;
            case CommandId.Info: Info(ref s, r); break;
            default:
                r.Error("ERR command not runnable on a shard: " + s.Id);
                break;
        }
    }

    /// <summary>INFO's numbers from this shard, as five little-endian longs: keys, expires, hits, misses, expired.</summary>
    private void Info(ref SubCommand s, ReplyBuffer r)
    {
        Span<byte> b = r.GetSpan(40);
        BinaryPrimitives.WriteInt64LittleEndian(b, _dict.Count);
        BinaryPrimitives.WriteInt64LittleEndian(b.Slice(8), _volatileCount);
        BinaryPrimitives.WriteInt64LittleEndian(b.Slice(16), Hits);
        BinaryPrimitives.WriteInt64LittleEndian(b.Slice(24), Misses);
        BinaryPrimitives.WriteInt64LittleEndian(b.Slice(32), ExpiredKeys);
        r.Advance(40);
        s.N1 = _dict.Count;
        s.N2 = _volatileCount;
    }
}
