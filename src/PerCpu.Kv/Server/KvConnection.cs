using System.Buffers;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using PerCpu.Kv.Protocol;
using PerCpu.Kv.Store;
using PerCpu.Kv.Transport;

namespace PerCpu.Kv.Server;

/// <summary>
/// One client, owned by the CPU that accepted it for its whole life. The loop: receive; parse every complete command
/// in the buffer (a pipelined batch); split the batch into one <see cref="ShardBatch"/> per shard, in order; run the
/// local shard's part directly and the others' on their CPUs (all at once); gather the replies in the commands' order
/// into one buffer and send it with one send. A command split across reads waits in the buffer for the rest.
/// </summary>
internal sealed partial class KvConnection : IValueTaskSource<int>
{
    /// <summary>The most commands parsed into one batch: bounds the replies held before a send.</summary>
    private const int MaxBatch = 1024;

    /// <summary>The largest receive buffer: one biggest bulk plus its headers (beyond it the client is closed).</summary>
    private const long MaxInput = RespParser.MaxBulkLength + 2 * RespParser.MaxInlineSize;

    /// <summary>How a command's reply is put together from its parts.</summary>
    private enum Gather : byte
    {
        /// <summary>Written by the connection itself into <see cref="_local"/>.</summary>
        Local,

        /// <summary>The one part's bytes.</summary>
        Single,

        /// <summary>An array of the parts (MGET).</summary>
        Array,

        /// <summary>The sum of the parts' counts (DEL, UNLINK, EXISTS, DBSIZE).</summary>
        Sum,

        /// <summary>+OK once every part ran (MSET, FLUSHDB).</summary>
        Ok,

        /// <summary>An array of every part's elements (KEYS).</summary>
        Concat,

        /// <summary>SCAN's cursor and keys.</summary>
        Scan,

        /// <summary>INFO's text.</summary>
        Info,
    }

    /// <summary>A parsed command of the current batch.</summary>
    private struct Cmd
    {
        public CommandInfo? Info;
        public int Arg;
        public int ArgCount;
        public Gather Gather;
        public int PartStart;
        public int PartCount;
        public int LocalStart;
        public int LocalLength;
    }

    /// <summary>A piece of a command: which shard ran it, and its index in that shard's batch.</summary>
    private struct Part
    {
        public int Shard;
        public int Sub;
    }

    private readonly KvServer _server;
    private readonly IKvTransport _io;
    private readonly Cpu _cpu;
    private readonly Shard[] _shards;

    private byte[] _in = BufferPool.Rent(ReplyBuffer.InitialSize);
    private int _start;
    private int _end;

    /// <summary>Bytes (from <see cref="_start"/>) the first incomplete command needs at least.</summary>
    private int _needed;

    private readonly ArgList _args = new();
    private Cmd[] _cmds = new Cmd[64];
    private int _cmdCount;
    private Part[] _parts = new Part[64];
    private int _partCount;
    private readonly ShardBatch[] _batches;
    private readonly ValueTask<int>[] _pending;
    private readonly ReplyBuffer _out = new();
    private readonly ReplyBuffer _local = new();

    /// <summary>A protocol error met while parsing: replied after the batch before it, then the connection closes.</summary>
    private string? _protocolError;

    /// <summary>QUIT was parsed: reply, then close.</summary>
    private bool _quit;

    /// <summary>Cross-shard calls as a Send and a reply Send instead of InvokeAsync (<see cref="KvServerOptions"/>' CrossShardCalls).</summary>
    private readonly bool _sendReply;

    /// <summary>appendfsync always: replies wait for the fsync of their writes.</summary>
    private readonly bool _durable;

    /// <summary>Shard parts sent and not yet replied (Send/reply mode; this CPU only).</summary>
    private int _outstanding;

    /// <summary>Completes when the last part has replied (Send/reply mode).</summary>
    private ManualResetValueTaskSourceCore<int> _gather;

    /// <summary>Runs a part on the shard's CPU, then sends the reply back to the connection's CPU.</summary>
    private static readonly Action<ShardBatch, long> s_runAndReply = static (batch, _) =>
    {
        batch.Shard.Execute(batch);
        batch.Owner!._cpu.Send(s_partDone!, batch.Owner);
    };

    /// <summary>On the connection's CPU: one part has replied; the last one resumes the connection's loop.</summary>
    private static readonly Action<KvConnection, long> s_partDone = static (connection, _) =>
    {
        if (--connection._outstanding == 0) connection._gather.SetResult(0);
    };

    int IValueTaskSource<int>.GetResult(short token) => _gather.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _gather.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _gather.OnCompleted(continuation, state, token, flags);

    /// <summary>Creates the connection; <see cref="Start"/> runs it on the transport's CPU.</summary>
    public KvConnection(KvServer server, IKvTransport io, long id)
    {
        _server = server;
        _io = io;
        _cpu = io.Cpu;
        Id = id;
        _shards = server.Shards;
        _batches = new ShardBatch[_shards.Length];
        for (int i = 0; i < _shards.Length; i++) _batches[i] = new ShardBatch(_shards[i]) { Owner = this };
        _durable = server.AlwaysFsync;
        // With appendfsync always a reply waits for an fsync: the InvokeAsync path carries that wait.
        _sendReply = server.CrossShardCalls == CrossShardCalls.SendReply && !_durable;
        _pending = new ValueTask<int>[_shards.Length];
        Start = StartCore;
    }

    /// <summary>The client id (CLIENT ID).</summary>
    public long Id { get; }

    /// <summary>CLIENT SETNAME's name.</summary>
    public string? Name { get; private set; }

    /// <summary>The peer.</summary>
    public System.Net.EndPoint? RemoteEndPoint => _io.RemoteEndPoint;

    /// <summary>Starts the loop: post this to the connection's CPU.</summary>
    public readonly Action Start;

    /// <summary>Closes the connection from any thread (shutdown).</summary>
    public void Abort() => _io.Abort();

    private void StartCore() => _ = RunAsync();

    /// <summary>The connection's loop; on its CPU. Completes when the connection has closed.</summary>
    public async Task RunAsync()
    {
        try
        {
            while (true)
            {
                if (!MakeRoom()) break;
                int n;
                try
                {
                    n = await _io.ReceiveAsync(_in.AsMemory(_end));
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
                {
                    break;
                }
                if (n <= 0) break;
                // The transport's await must resume on this CPU: the buffers and the local shard are its data only.
                if (Cpu.Current != _cpu) _server.CountOffCpuResume();
                _end += n;

                bool close = false;
                while (!close)
                {
                    ParseBatch();
                    if (_cmdCount == 0 && _protocolError == null) break; // the rest is an incomplete command
                    Dispatch();
                    if (_sendReply)
                    {
                        // Resumed inline by the last reply IPI, on this CPU: no hop through the task queue.
                        if (_outstanding > 0) await new ValueTask<int>(this, _gather.Version).ConfigureAwait(false);
                    }
                    else
                    {
                        for (int s = 0; s < _batches.Length; s++)
                        {
                            if (_batches[s].Count > 0) await _pending[s];
                        }
                    }
                    Assemble();
                    close = _protocolError != null || _quit;
                    if (_protocolError != null) _out.Error(_protocolError);
                    if (_out.Length > 0 || _chunkCount > 0)
                    {
                        try
                        {
                            if (_chunkCount == 0) await _io.SendAsync(_out.Buffer.AsMemory(0, _out.Length));
                            else
                            {
                                _server.CountGatheredSend();
                                await _io.SendAsync(GatherChunks());
                            }
                        }
                        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
                        {
                            close = true;
                        }
                    }
                    _out.Reset();
                    _chunkCount = 0;
                    _outMark = 0;
                }
                if (close) break;
            }
        }
        catch (Exception e)
        {
            _server.Log.ConnectionFailed(e, Id, RemoteEndPoint?.ToString() ?? "?");
        }
        finally
        {
            await CloseAsync();
        }
    }

    private async ValueTask CloseAsync()
    {
        try
        {
            await _io.DisposeAsync();
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // already gone
        }
        BufferPool.Return(_in);
        _in = [];
        _out.Release();
        _local.Release();
        foreach (ShardBatch b in _batches) b.Reply.Release();
        _server.Closed(this);
    }

    /// <summary>
    /// Moves the unparsed bytes to the front when the next command would not fit behind them, and grows the buffer
    /// when it is full. False when one command is larger than any request may be (the client is closed, as by
    /// Redis's query buffer limit).
    /// </summary>
    private bool MakeRoom()
    {
        int unparsed = _end - _start;
        if (_start > 0 && (_end == _in.Length || _needed > _in.Length - _start))
        {
            Buffer.BlockCopy(_in, _start, _in, 0, unparsed);
            _start = 0;
            _end = unparsed;
        }
        if (_start == _end)
        {
            _start = _end = 0;
            if (_in.Length > 1024 * 1024)
            {
                // A huge request is over: give its buffer back.
                BufferPool.Return(_in);
                _in = BufferPool.Rent(ReplyBuffer.InitialSize);
            }
        }
        if (_end == _in.Length)
        {
            // Full of one unfinished command: double (not the announced size at once, so that a client announcing a
            // huge bulk and sending little costs little), up to the largest request there may be.
            if (_in.Length >= MaxInput) return false;
            byte[] bigger = BufferPool.Rent((int)Math.Min(MaxInput, 2L * _in.Length));
            Buffer.BlockCopy(_in, _start, bigger, 0, unparsed);
            BufferPool.Return(_in);
            _in = bigger;
            _start = 0;
            _end = unparsed;
        }
        return true;
    }

    /// <summary>Parses every complete command (up to <see cref="MaxBatch"/>) from the buffer.</summary>
    private void ParseBatch()
    {
        _cmdCount = 0;
        _args.Count = 0;
        _needed = 0;
        Span<byte> buffer = _in.AsSpan(0, _end);
        while (_cmdCount < MaxBatch && !_quit)
        {
            int first = _args.Count;
            ParseStatus status = RespParser.Parse(buffer, ref _start, _args, out string? error, out int needed);
            if (status == ParseStatus.Empty) continue;
            if (status == ParseStatus.Incomplete)
            {
                _needed = needed;
                break;
            }
            if (status == ParseStatus.Error)
            {
                _protocolError = "ERR " + error;
                break;
            }
            if (_cmdCount == _cmds.Length) Array.Resize(ref _cmds, _cmdCount * 2);
            _cmds[_cmdCount++] = new Cmd { Arg = first, ArgCount = _args.Count - first };
            // QUIT ends the batch: what follows it is never run.
            if (_args.Lengths[first] == 4 && System.Text.Ascii.EqualsIgnoreCase(_args.Get(_in, first), "QUIT"u8)) _quit = true;
        }
    }

    /// <summary>Routes every command of the batch, then starts the remote shards' parts and runs the local one.</summary>
    private void Dispatch()
    {
        _partCount = 0;
        _local.Reset();
        foreach (ShardBatch b in _batches)
        {
            b.Reset();
            b.Input = _in;
            b.Args = _args;
        }
        for (int i = 0; i < _cmdCount; i++) Route(ref _cmds[i]);
        _server.CountCommands(_cpu.Id, _cmdCount);

        int own = _cpu.Id;
        for (int s = 0; s < _batches.Length; s++)
        {
            // All remote parts go out before the local part runs, so that the shards work in parallel.
            if (s == own || _batches[s].Count == 0) continue;
            if (_sendReply)
            {
                if (_outstanding++ == 0) _gather.Reset();
                _shards[s].Cpu.Send(s_runAndReply, _batches[s]);
            }
            else _pending[s] = _durable ? _shards[s].Cpu.InvokeAsync(_batches[s].RunDurable) : _shards[s].Cpu.InvokeAsync(_batches[s].Run);
        }
        if (own < _batches.Length && _batches[own].Count > 0) _pending[own] = _batches[own].ExecuteDurable();
    }

    private void AddPart(int shard, int sub)
    {
        if (_partCount == _parts.Length) Array.Resize(ref _parts, _partCount * 2);
        _parts[_partCount++] = new Part { Shard = shard, Sub = sub };
    }

    private ReadOnlySpan<byte> Arg(in Cmd c, int i) => _args.Get(_in, c.Arg + i);

    private void Route(ref Cmd c)
    {
        CommandInfo? info = CommandTable.Find(Arg(c, 0));
        c.Info = info;
        c.PartStart = _partCount;
        c.Gather = Gather.Local;
        c.LocalStart = _local.Length;
        int n = _shards.Length;
        if (info == null) _local.Error(UnknownCommand(c));
        else if (!info.ArityOk(c.ArgCount) || (info.Id == CommandId.MSet && c.ArgCount % 2 == 0)) _local.Error(info.ArityError);
        else
        {
            switch (info.Route)
            {
                case Server.Route.Connection:
                    RunLocal(ref c, info);
                    break;
                case Server.Route.Key:
                {
                    int s = ByteKeyComparer.ShardOf(Arg(c, 1), n);
                    AddPart(s, _batches[s].Add(info.Id, c.Arg, c.ArgCount));
                    c.Gather = Gather.Single;
                    break;
                }
                case Server.Route.Keys:
                    for (int k = 1; k < c.ArgCount; k++)
                    {
                        int s = ByteKeyComparer.ShardOf(Arg(c, k), n);
                        AddPart(s, _batches[s].Add(info.Id, c.Arg + k, 1));
                    }
                    c.Gather = info.Id == CommandId.MGet ? Gather.Array : Gather.Sum;
                    break;
                case Server.Route.Pairs:
                    for (int k = 1; k < c.ArgCount; k += 2)
                    {
                        int s = ByteKeyComparer.ShardOf(Arg(c, k), n);
                        AddPart(s, _batches[s].Add(info.Id, c.Arg + k, 2));
                    }
                    c.Gather = Gather.Ok;
                    break;
                case Server.Route.All:
                    RouteAll(ref c, info);
                    break;
                case Server.Route.Scan:
                    RouteScan(ref c);
                    break;
            }
        }
        c.PartCount = _partCount - c.PartStart;
        c.LocalLength = _local.Length - c.LocalStart;
    }

    private void RouteAll(ref Cmd c, CommandInfo info)
    {
        if (info.Id is CommandId.FlushDb or CommandId.FlushAll && c.ArgCount > 1)
        {
            // ASYNC and SYNC are accepted (a flush here is always immediate); anything else is Redis's syntax error.
            if (c.ArgCount > 2 || !(System.Text.Ascii.EqualsIgnoreCase(Arg(c, 1), "ASYNC"u8) || System.Text.Ascii.EqualsIgnoreCase(Arg(c, 1), "SYNC"u8)))
            {
                _local.Error(Shard.SyntaxError);
                return;
            }
        }
        for (int s = 0; s < _batches.Length; s++) AddPart(s, _batches[s].Add(info.Id, c.Arg, c.ArgCount));
        c.Gather = info.Id switch
        {
            CommandId.DbSize => Gather.Sum,
            CommandId.Keys => Gather.Concat,
            CommandId.Info => Gather.Info,
            _ => Gather.Ok,
        };
    }

    /// <summary>SCAN's cursor is position × shards + shard: the shard to visit and how far into it.</summary>
    private void RouteScan(ref Cmd c)
    {
        if (!ulong.TryParse(Arg(c, 1), System.Globalization.NumberStyles.None, null, out ulong cursor))
        {
            _local.Error("ERR invalid cursor"u8);
            return;
        }
        long count = 10;
        int pattern = -1;
        byte type = 0;
        for (int j = 2; j < c.ArgCount; j++)
        {
            ReadOnlySpan<byte> o = Arg(c, j);
            if (System.Text.Ascii.EqualsIgnoreCase(o, "COUNT"u8) && j + 1 < c.ArgCount)
            {
                if (!Number.TryParseInt64(Arg(c, ++j), out count))
                {
                    _local.Error(Shard.NotInteger);
                    return;
                }
                if (count < 1)
                {
                    _local.Error(Shard.SyntaxError);
                    return;
                }
            }
            else if (System.Text.Ascii.EqualsIgnoreCase(o, "MATCH"u8) && j + 1 < c.ArgCount) pattern = c.Arg + ++j;
            else if (System.Text.Ascii.EqualsIgnoreCase(o, "TYPE"u8) && j + 1 < c.ArgCount)
            {
                ReadOnlySpan<byte> t = Arg(c, ++j);
                type = System.Text.Ascii.EqualsIgnoreCase(t, "STRING"u8) ? (byte)1 : System.Text.Ascii.EqualsIgnoreCase(t, "LIST"u8) ? (byte)2 : (byte)3;
            }
            else
            {
                _local.Error(Shard.SyntaxError);
                return;
            }
        }
        int n = _shards.Length;
        int s = (int)(cursor % (ulong)n);
        long position = (long)Math.Min(cursor / (ulong)n, long.MaxValue);
        // The named shard from the cursor's position, and every later shard from its start: a shard that finishes
        // within the call lets the reply go on into the next, so a small data set comes back whole with cursor 0, as
        // from Redis (the later shards' work is wasted when an earlier one is not done: at most COUNT entries each).
        for (int t = s; t < n; t++) AddPart(t, _batches[t].Add(CommandId.Scan, pattern, pattern >= 0 ? 1 : 0, t == s ? position : 0, count, type));
        c.Gather = Gather.Scan;
    }

    /// <summary>Puts every command's reply, in order, into <see cref="_out"/>.</summary>
    private void Assemble()
    {
        for (int i = 0; i < _cmdCount; i++)
        {
            ref Cmd c = ref _cmds[i];
            switch (c.Gather)
            {
                case Gather.Local:
                    _out.Raw(_local.Buffer.AsSpan(c.LocalStart, c.LocalLength));
                    break;
                case Gather.Single:
                    EmitPart(c.PartStart);
                    break;
                case Gather.Array:
                    _out.ArrayHeader(c.PartCount);
                    for (int p = 0; p < c.PartCount; p++) EmitPart(c.PartStart + p);
                    break;
                case Gather.Sum:
                {
                    long sum = 0;
                    for (int p = 0; p < c.PartCount; p++) sum += PartSub(c.PartStart + p).N1;
                    _out.Integer(sum);
                    break;
                }
                case Gather.Ok:
                    _out.Ok();
                    break;
                case Gather.Concat:
                {
                    long sum = 0;
                    for (int p = 0; p < c.PartCount; p++) sum += PartSub(c.PartStart + p).N1;
                    _out.ArrayHeader(sum);
                    for (int p = 0; p < c.PartCount; p++) EmitPart(c.PartStart + p);
                    break;
                }
                case Gather.Scan:
                {
                    // Take the shards in order up to the first that is not done; its position is the next cursor.
                    ulong next = 0;
                    long keys = 0;
                    int used = 0;
                    while (used < c.PartCount)
                    {
                        ref SubCommand sub = ref PartSub(c.PartStart + used);
                        keys += sub.N2;
                        used++;
                        if (sub.N1 >= 0)
                        {
                            next = (ulong)sub.N1 * (ulong)_shards.Length + (ulong)_parts[c.PartStart + used - 1].Shard;
                            break;
                        }
                    }
                    _out.ArrayHeader(2);
                    Span<byte> digits = stackalloc byte[20];
                    next.TryFormat(digits, out int len);
                    _out.Bulk(digits.Slice(0, len));
                    _out.ArrayHeader(keys);
                    for (int p = 0; p < used; p++) EmitPart(c.PartStart + p);
                    break;
                }
                case Gather.Info:
                    WriteInfo(c);
                    break;
            }
        }
    }

    /// <summary>Replies at least this long are sent from the shard's buffer (gathered) instead of copied.</summary>
    private const int GatherThreshold = 8 * 1024;

    /// <summary>A piece of the batch's output: a range of <see cref="_out"/> (Array null) or of a shard's reply buffer.</summary>
    private struct Chunk
    {
        public byte[]? Array;
        public int Offset;
        public int Length;
    }

    /// <summary>A reusable link of the gathered output.</summary>
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public void Set(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
            Next = null;
        }

        public void Link(Segment next) => Next = next;
    }

    private Chunk[] _chunks = new Chunk[16];
    private int _chunkCount;
    private readonly List<Segment> _segments = [];

    /// <summary>Where the part of <see cref="_out"/> not yet in a chunk starts.</summary>
    private int _outMark;

    /// <summary>Puts a part's reply into the output: copied, or — when large and the transport gathers — referenced.</summary>
    private void EmitPart(int part)
    {
        Part p = _parts[part];
        ref SubCommand sub = ref _batches[p.Shard].Subs[p.Sub];
        byte[] buffer = _batches[p.Shard].Reply.Buffer;
        if (sub.ReplyLength < GatherThreshold || !_io.GatheringSend)
        {
            _out.Raw(buffer.AsSpan(sub.ReplyStart, sub.ReplyLength));
            return;
        }
        // The shard's buffer stays as it is until this batch has been sent (it is reset at the next dispatch).
        AddChunk(null, _outMark, _out.Length - _outMark);
        AddChunk(buffer, sub.ReplyStart, sub.ReplyLength);
        _outMark = _out.Length;
    }

    private void AddChunk(byte[]? array, int offset, int length)
    {
        if (length == 0) return;
        if (_chunkCount == _chunks.Length) Array.Resize(ref _chunks, _chunkCount * 2);
        _chunks[_chunkCount++] = new Chunk { Array = array, Offset = offset, Length = length };
    }

    /// <summary>The output as a sequence over <see cref="_out"/> and the shards' buffers, for one gathering send.</summary>
    private ReadOnlySequence<byte> GatherChunks()
    {
        AddChunk(null, _outMark, _out.Length - _outMark);
        _outMark = _out.Length;
        while (_segments.Count < _chunkCount) _segments.Add(new Segment());
        long index = 0;
        for (int i = 0; i < _chunkCount; i++)
        {
            Chunk c = _chunks[i];
            // _out is final now (it may have moved while it grew): its ranges are resolved only here.
            byte[] array = c.Array ?? _out.Buffer;
            _segments[i].Set(array.AsMemory(c.Offset, c.Length), index);
            if (i > 0) _segments[i - 1].Link(_segments[i]);
            index += c.Length;
        }
        Segment last = _segments[_chunkCount - 1];
        return new ReadOnlySequence<byte>(_segments[0], 0, last, last.Memory.Length);
    }

    private ref SubCommand PartSub(int part)
    {
        Part p = _parts[part];
        return ref _batches[p.Shard].Subs[p.Sub];
    }

    private ReadOnlySpan<byte> PartReply(int part)
    {
        Part p = _parts[part];
        ref SubCommand sub = ref _batches[p.Shard].Subs[p.Sub];
        return _batches[p.Shard].Reply.Buffer.AsSpan(sub.ReplyStart, sub.ReplyLength);
    }
}
