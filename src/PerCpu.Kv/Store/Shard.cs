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

    /// <summary>The shard's log, or null (memory only).</summary>
    private AppendOnlyFile? _aof;

    /// <summary>The Bio soft interrupt that runs the log's group commits on this CPU.</summary>
    private SoftInterrupt? _bio;

    /// <summary>True while the log is replayed (its records are not logged again).</summary>
    private bool _replaying;

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

    /// <summary>Stops the timer and closes the log (what is pending is written and fsynced). On <see cref="Cpu"/>.</summary>
    public void Stop()
    {
        _expiryTimer?.Dispose();
        _aof?.Dispose();
        _aof = null;
    }

    /// <summary>From now on, writes go to <paramref name="aof"/>, committed by <paramref name="bio"/>. On <see cref="Cpu"/>.</summary>
    public void AttachLog(AppendOnlyFile aof, SoftInterrupt bio)
    {
        _aof = aof;
        _bio = bio;
    }

    /// <summary>
    /// Writes the whole shard as records for a log rewrite: SET (with PXAT) for strings, RPUSH in chunks and a
    /// PEXPIREAT for lists; keys already expired are left out. On <see cref="Cpu"/>.
    /// </summary>
    public void WriteSnapshot(ReplyBuffer b)
    {
        long now = Now();
        Span<byte> at = stackalloc byte[20];
        foreach (KvEntry e in _dict.Values)
        {
            if (e.ExpireAt != 0 && e.ExpireAt <= now) continue;
            int atLength = 0;
            if (e.ExpireAt != 0) e.ExpireAt.TryFormat(at, out atLength);
            if (e.Value is byte[] v)
            {
                b.ArrayHeader(e.ExpireAt != 0 ? 5 : 3);
                b.Bulk("SET"u8);
                b.Bulk(e.Key);
                b.Bulk(v);
                if (e.ExpireAt != 0)
                {
                    b.Bulk("PXAT"u8);
                    b.Bulk(at.Slice(0, atLength));
                }
                continue;
            }
            var list = (KvList)e.Value;
            for (int i = 0; i < list.Count; i += 64)
            {
                int n = Math.Min(64, list.Count - i);
                b.ArrayHeader(2 + n);
                b.Bulk("RPUSH"u8);
                b.Bulk(e.Key);
                for (int j = 0; j < n; j++) b.Bulk(list[i + j]);
            }
            if (e.ExpireAt != 0)
            {
                b.ArrayHeader(3);
                b.Bulk("PEXPIREAT"u8);
                b.Bulk(e.Key);
                b.Bulk(at.Slice(0, atLength));
            }
        }
    }

    /// <summary>The log's size and rewrites, for INFO (0, 0 without a log).</summary>
    public (long Size, long Rewrites) LogState => _aof is { } a ? (a.Size, a.Rewrites) : (0, 0);

    /// <summary>The Bio soft interrupt's work on this CPU: a group commit of the log.</summary>
    public ValueTask FlushLogAsync() => _aof?.FlushAsync() ?? ValueTask.CompletedTask;

    /// <summary>
    /// Replays up to <paramref name="maxRecords"/> of a log's records (<paramref name="data"/> from
    /// <paramref name="pos"/> up to <paramref name="length"/>) into this shard, before it serves; a chunk per call so
    /// that a long log does not hold the CPU in one IPI function. On <see cref="Cpu"/>. Returns the records replayed.
    /// </summary>
    public int Replay(byte[] data, int length, ref int pos, int maxRecords = 4096)
    {
        var args = new ArgList();
        var batch = new ShardBatch(this) { Input = data, Args = args };
        int records = 0;
        _replaying = true;
        try
        {
            while (pos < length && records < maxRecords)
            {
                int first = args.Count;
                ParseStatus status = RespParser.Parse(data.AsSpan(0, length), ref pos, args, out _, out _);
                if (status == ParseStatus.Empty) continue;
                if (status != ParseStatus.Complete) break;
                int count = args.Count - first;
                CommandInfo info = CommandTable.Find(args.Get(data, first))
                    ?? throw new InvalidDataException($"A record in the log of shard {Id} is not a known command: '{System.Text.Encoding.UTF8.GetString(args.Get(data, first))}'.");
                // Multi-key commands are logged one key per record; their pieces take the key, not the name.
                if (info.Route is Route.Keys or Route.Pairs) batch.Add(info.Id, first + 1, count - 1);
                else batch.Add(info.Id, first, count);
                records++;
            }
            if (batch.Count > 0) Execute(batch);
        }
        finally
        {
            _replaying = false;
            batch.Reply.Release();
        }
        return records;
    }

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
                    LogDel(e.Key);
                    ExpiredKeys++;
                    expired++;
                }
            }
            if (expired * 4 <= sampled || Stopwatch.GetTimestamp() - start > MaxCycleTicks) break;
        }
        // everysec: data written but not fsynced for a second gets its fsync even when no write comes to trigger it.
        if (_aof != null && _aof.FsyncDue) _bio!.Schedule();
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
            // Logged as Redis propagates an expiry: a replay (run with expiry off) must see the key go here.
            LogDel(e.Key);
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

    // ---- the log: each write as a record that rebuilds the same state (absolute expiries) ----

    private bool Logging => _aof != null && !_replaying;

    /// <summary>A string key's whole state: SET key value [PXAT at].</summary>
    private void LogString(KvEntry e)
    {
        if (!Logging) return;
        if (e.ExpireAt == 0)
        {
            _aof!.Append(3, "SET"u8, e.Key, (byte[])e.Value);
            return;
        }
        Span<byte> at = stackalloc byte[20];
        e.ExpireAt.TryFormat(at, out int n);
        _aof!.Append(5, "SET"u8, e.Key, (byte[])e.Value, "PXAT"u8, at.Slice(0, n));
    }

    private void LogDel(ReadOnlySpan<byte> key)
    {
        if (Logging) _aof!.Append(2, "DEL"u8, key);
    }

    private void LogExpire(KvEntry e)
    {
        if (!Logging) return;
        if (e.ExpireAt == 0)
        {
            _aof!.Append(2, "PERSIST"u8, e.Key);
            return;
        }
        Span<byte> at = stackalloc byte[20];
        e.ExpireAt.TryFormat(at, out int n);
        _aof!.Append(3, "PEXPIREAT"u8, e.Key, at.Slice(0, n));
    }

    /// <summary>A command whose effect is the same on replay (APPEND, LPUSH, LPOP …): its arguments as received.</summary>
    private void LogArgs(ref SubCommand s)
    {
        if (Logging) _aof!.AppendArgs(_args, _input, s.Arg, s.ArgCount);
    }

    // ---- execution ----

    /// <summary>Runs every piece of <paramref name="batch"/> in order, writing each reply into the batch. On <see cref="Cpu"/>.</summary>
    public void Execute(ShardBatch batch)
    {
        Debug.Assert(Cpu.Current == Cpu, "a shard is touched only by its own CPU");
        _input = batch.Input;
        _args = batch.Args;
        ReplyBuffer r = batch.Reply;
        // A replay runs at time 0, as Redis loads its AOF with expiry off: a key whose (absolute) expiry has passed
        // must still be there for the records after it (an APPEND to it must not create a new key), and goes only
        // after the replay, lazily or by the expiry cycle.
        long now = _replaying ? 0 : Now();
        SubCommand[] subs = batch.Subs;
        long records = _aof?.Records ?? 0;
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
        if (_aof != null && _aof.Records != records)
        {
            // appendfsync always: the replies wait for the group commit that covers these records.
            if (_aof.Always)
            {
                batch.NeedsSync = true;
                _aof.Wait(batch);
            }
            if (_aof.Failure == null) _bio!.Schedule();
        }
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
                if (e != null)
                {
                    Remove(e);
                    LogDel(e.Key);
                }
                s.N1 = e != null ? 1 : 0;
                break;
            }
            case CommandId.Exists:
                s.N1 = Find(Arg(ref s, 0), now) != null ? 1 : 0;
                break;
            case CommandId.MSet:
            {
                ReadOnlySpan<byte> key = Arg(ref s, 0);
                KvEntry e = SetString(key, Find(key, now), Arg(ref s, 1));
                SetExpire(e, 0);
                LogString(e);
                break;
            }
            case CommandId.DbSize: s.N1 = _dict.Count; break;
            case CommandId.FlushDb:
            case CommandId.FlushAll:
                Clear();
                _aof?.Append(1, "FLUSHALL"u8);
                break;
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
