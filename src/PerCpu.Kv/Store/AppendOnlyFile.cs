using System.Diagnostics;
using PerCpu.Kv.Protocol;
using PerCpu.Kv.Server;

namespace PerCpu.Kv.Store;

/// <summary>
/// A shard's append-only file: its write commands as RESP records (the format of Redis's AOF), with relative expiries
/// turned into absolute ones so that a replay rebuilds the same state. Owned by the shard's CPU.
/// <para>
/// Group commit: a batch's records go into <see cref="_pending"/>; the shard schedules its CPU's Bio soft interrupt,
/// whose (asynchronous) run swaps the buffers, writes and — per <see cref="AppendFsync"/> — fsyncs on a pool thread
/// while the CPU goes on, then releases the batches that waited for that fsync. Records appended meanwhile wait for the
/// next run: one fsync covers every write of a group.
/// </para>
/// </summary>
internal sealed class AppendOnlyFile : IDisposable
{
    private FileStream _file;
    private readonly AppendFsync _fsync;
    private ReplyBuffer _pending = new();
    private ReplyBuffer _writing = new();
    private List<ShardBatch> _waiting = [];
    private List<ShardBatch> _releasing = [];
    private long _lastFsync = Stopwatch.GetTimestamp();
    private bool _unsynced;
    private Task _inFlight = Task.CompletedTask;

    /// <summary>Closed (shutdown): a commit still on its way finishes, but nothing more is written or rewritten.</summary>
    private bool _disposed;

    /// <summary>Bytes in the file now (owner CPU; updated after each write).</summary>
    private long _size;

    /// <summary>The size right after the last rewrite (or at open): the file is rewritten when it doubles past it.</summary>
    private long _baseSize;

    /// <summary>Writes the shard's whole state as records (a snapshot); set by the shard.</summary>
    private readonly Action<ReplyBuffer> _snapshot;

    /// <summary>No rewrite below this size (Redis's auto-aof-rewrite-min-size).</summary>
    private readonly long _rewriteMinSize;

    /// <summary>Opens (creating) <paramref name="path"/> for appending.</summary>
    /// <param name="path">The file.</param>
    /// <param name="fsync">When writes are acknowledged.</param>
    /// <param name="snapshot">Writes the shard's state as records, for a rewrite (called on the shard's CPU).</param>
    /// <param name="rewriteMinSize">No rewrite below this size; above it, a rewrite when the file has doubled since the last.</param>
    /// <param name="onFailure">Told once if the file cannot be written.</param>
    public AppendOnlyFile(string path, AppendFsync fsync, Action<ReplyBuffer> snapshot, long rewriteMinSize, Action<Exception>? onFailure = null)
    {
        _onFailure = onFailure;
        Path = path;
        _fsync = fsync;
        _snapshot = snapshot;
        _rewriteMinSize = rewriteMinSize;
        _file = Open(path);
        _size = _baseSize = _file.Length;
    }

    private static FileStream Open(string path) => new(path, FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 0);

    /// <summary>Rewrites done (for INFO and tests).</summary>
    public long Rewrites { get; private set; }

    /// <summary>Bytes in the file.</summary>
    public long Size => _size;

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>Records wait to be written.</summary>
    public bool HasPending => _pending.Length > 0;

    /// <summary>Everysec: written data has not been fsynced for a second (the shard's timer then schedules a run).</summary>
    public bool FsyncDue => _fsync == AppendFsync.EverySec && _unsynced && Stopwatch.GetElapsedTime(_lastFsync) >= TimeSpan.FromSeconds(1);

    /// <summary>Whether writes are acknowledged only after their fsync.</summary>
    public bool Always => _fsync == AppendFsync.Always;

    /// <summary>
    /// The log could not be written (disk full, I/O error): from now on it keeps nothing, and every batch that waits
    /// for an fsync — now or later — fails, so that no write is acknowledged as durable that is not (its connection
    /// closes: the client learns the write's fate is unknown). A restart replays what reached the file.
    /// </summary>
    public Exception? Failure { get; private set; }

    private void Fail(Exception e)
    {
        Failure ??= new IOException($"The append-only file {Path} could not be written ({e.Message}): writes are no longer durable; fix the disk and restart the server.", e);
        _onFailure?.Invoke(Failure);
        _pending.Reset();
        _writing.Reset();
        foreach (ShardBatch b in _releasing) b.NotDurable(Failure);
        foreach (ShardBatch b in _waiting) b.NotDurable(Failure);
        _releasing.Clear();
        _waiting.Clear();
        _unsynced = false;
    }

    /// <summary>Told once when the log fails (the server logs it).</summary>
    private readonly Action<Exception>? _onFailure;

    /// <summary>Records appended since the file was opened (a batch compares it to know whether it wrote).</summary>
    public long Records { get; private set; }

    /// <summary>Appends a record of the first <paramref name="count"/> of <paramref name="a0"/> … <paramref name="a4"/>.</summary>
    public void Append(int count, ReadOnlySpan<byte> a0, ReadOnlySpan<byte> a1 = default, ReadOnlySpan<byte> a2 = default, ReadOnlySpan<byte> a3 = default, ReadOnlySpan<byte> a4 = default)
    {
        Records++;
        if (Failure != null) return; // nothing is kept once the file has failed: memory must not grow with it
        _pending.ArrayHeader(count);
        _pending.Bulk(a0);
        if (count > 1) _pending.Bulk(a1);
        if (count > 2) _pending.Bulk(a2);
        if (count > 3) _pending.Bulk(a3);
        if (count > 4) _pending.Bulk(a4);
    }

    /// <summary>Appends a record of a command's arguments as received.</summary>
    public void AppendArgs(ArgList args, byte[] input, int first, int count)
    {
        Records++;
        if (Failure != null) return;
        _pending.ArrayHeader(count);
        for (int i = 0; i < count; i++) _pending.Bulk(args.Get(input, first + i));
    }

    /// <summary>Holds <paramref name="batch"/>'s replies until the next fsync (fails it at once if the log has failed).</summary>
    public void Wait(ShardBatch batch)
    {
        if (Failure != null) batch.NotDurable(Failure);
        else _waiting.Add(batch);
    }

    /// <summary>
    /// The Bio soft interrupt's work: write what is pending (and fsync it when the policy asks), release the batches
    /// that waited, and go round again while more was appended meanwhile.
    /// </summary>
    public async ValueTask FlushAsync()
    {
        while (!_disposed && Failure == null && (_pending.Length > 0 || FsyncDue))
        {
            (_pending, _writing) = (_writing, _pending);
            (_waiting, _releasing) = (_releasing, _waiting);
            bool sync = _fsync == AppendFsync.Always || (_fsync == AppendFsync.EverySec && Stopwatch.GetElapsedTime(_lastFsync) >= TimeSpan.FromSeconds(1));
            // Off the CPU: a write and an fsync block for as long as the disk takes; the CPU serves other work meanwhile.
            _inFlight = Task.Run(() => WriteAndSync(sync));
            try
            {
                await _inFlight;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
            {
                Fail(e);
                return;
            }
            if (sync)
            {
                _lastFsync = Stopwatch.GetTimestamp();
                _unsynced = false;
            }
            else if (_writing.Length > 0) _unsynced = true;
            _size += _writing.Length;
            _writing.Reset();
            foreach (ShardBatch b in _releasing) b.Durable();
            _releasing.Clear();
            if (!_disposed && _size >= _rewriteMinSize && _size >= 2 * _baseSize) await RewriteAsync();
        }
    }

    /// <summary>
    /// Replaces the file with a snapshot of the shard (Redis's AOF rewrite), so that it does not grow without bound.
    /// The snapshot is taken on the CPU between two commits: the records still pending are already in it, so they
    /// are dropped (their waiters are released once the new file is durable). Written to a temporary file, fsynced and
    /// renamed over the old one, off the CPU.
    /// </summary>
    private async ValueTask RewriteAsync()
    {
        var snapshot = new ReplyBuffer();
        _snapshot(snapshot);
        _pending.Reset();
        (_waiting, _releasing) = (_releasing, _waiting);
        _inFlight = Task.Run(() => Replace(snapshot));
        try
        {
            await _inFlight;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            snapshot.Release();
            Fail(e);
            return;
        }
        _size = _baseSize = snapshot.Length;
        _lastFsync = Stopwatch.GetTimestamp();
        _unsynced = false;
        snapshot.Release();
        Rewrites++;
        foreach (ShardBatch b in _releasing) b.Durable();
        _releasing.Clear();
    }

    private void Replace(ReplyBuffer snapshot)
    {
        string temp = Path + ".rewrite";
        using (var f = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0))
        {
            f.Write(snapshot.Buffer, 0, snapshot.Length);
            f.Flush(flushToDisk: true);
        }
        _file.Dispose();
        // rename(2) replaces atomically: a crash leaves either the old file or the new one, never a mix.
        File.Move(temp, Path, overwrite: true);
        _file = Open(Path);
    }

    private void WriteAndSync(bool sync)
    {
        if (_writing.Length > 0) _file.Write(_writing.Buffer, 0, _writing.Length);
        if (sync) _file.Flush(flushToDisk: true);
    }

    /// <summary>Writes and fsyncs what is left (shutdown).</summary>
    public void Dispose()
    {
        // A group commit may be writing on a pool thread: the file takes one writer at a time.
        try
        {
            _inFlight.Wait();
        }
        catch (AggregateException)
        {
            // that commit's failure was handled by the commit
        }
        _disposed = true;
        _unsynced = false;
        if (Failure == null)
        {
            try
            {
                if (_pending.Length > 0) _file.Write(_pending.Buffer, 0, _pending.Length);
                _file.Flush(flushToDisk: true);
                foreach (ShardBatch b in _waiting) b.Durable();
                _waiting.Clear();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
            {
                // The shutdown goes on; the batches still waiting fail instead of being acknowledged.
                Fail(e);
            }
        }
        _pending.Reset();
        try
        {
            _file.Dispose();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // a failed file may fail its close too; nothing is left to save
        }
    }

    /// <summary>
    /// Reads <paramref name="path"/>'s records for replay. A torn last record (a crash in the middle of a write) is cut
    /// off the file; <paramref name="tornBytes"/> says how much was dropped. A record that is not a command (damage
    /// other than at the end) stops the start with an error that says where.
    /// </summary>
    public static byte[] ReadForReplay(string path, out int length, out long tornBytes)
    {
        byte[] data = File.Exists(path) ? File.ReadAllBytes(path) : [];
        var args = new ArgList();
        int pos = 0;
        while (pos < data.Length)
        {
            int before = pos;
            args.Count = 0;
            ParseStatus status = RespParser.Parse(data, ref pos, args, out string? error, out _);
            if (status == ParseStatus.Incomplete)
            {
                pos = before;
                break;
            }
            if (status == ParseStatus.Error)
                throw new InvalidDataException($"{path} is damaged at byte {before} ({error}): move the file away or truncate it to {before} bytes to start with what precedes.");
        }
        length = pos;
        tornBytes = data.Length - pos;
        if (tornBytes > 0)
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Write);
            f.SetLength(pos);
            f.Flush(flushToDisk: true);
        }
        return data;
    }
}
