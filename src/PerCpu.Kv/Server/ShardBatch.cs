using PerCpu.Kv.Protocol;
using System.Threading.Tasks.Sources;
using PerCpu.Kv.Store;

namespace PerCpu.Kv.Server;

/// <summary>One piece of a command for one shard, and the reply the shard produced for it.</summary>
internal struct SubCommand
{
    /// <summary>What to run.</summary>
    public CommandId Id;

    /// <summary>Index of the piece's first argument in the connection's <see cref="ArgList"/>.</summary>
    public int Arg;

    /// <summary>Arguments in the piece (for a whole command: all of them, the name included).</summary>
    public int ArgCount;

    /// <summary>Where the shard's reply bytes start in <see cref="ShardBatch.Reply"/>.</summary>
    public int ReplyStart;

    /// <summary>How many reply bytes.</summary>
    public int ReplyLength;

    /// <summary>A numeric result for gathering (keys deleted, keys counted, a SCAN position …); also an input for SCAN.</summary>
    public long N1;

    /// <summary>A second numeric result (expiring keys for INFO; the COUNT for SCAN).</summary>
    public long N2;

    /// <summary>SCAN's TYPE filter: 0 none, 1 string, 2 list, 3 a type no key has.</summary>
    public byte TypeFilter;
}

/// <summary>
/// The commands of one connection's batch that go to one shard, in the connection's order, and the replies the shard
/// wrote for them. One per connection and shard, reused for every batch; the connection fills it on its CPU, the
/// shard runs it on its own CPU (an IPI through <see cref="Cpu.InvokeAsync{T}(Func{T}, CancellationToken)"/>, or a
/// direct call when the shard is local), then the connection reads the replies. The IPI ring orders the hand-overs.
/// </summary>
internal sealed class ShardBatch : IValueTaskSource<int>
{
    /// <summary>The target shard.</summary>
    public readonly Shard Shard;

    /// <summary>The pieces; valid up to <see cref="Count"/>.</summary>
    public SubCommand[] Subs = new SubCommand[32];

    /// <summary>Pieces in this batch.</summary>
    public int Count;

    /// <summary>The replies, written by the shard.</summary>
    public readonly ReplyBuffer Reply = new();

    /// <summary>The connection's receive buffer: the arguments' bytes (stable while the batch is out).</summary>
    public byte[] Input = [];

    /// <summary>The connection's argument table.</summary>
    public ArgList Args = null!;

    /// <summary>The connection whose batch this is.</summary>
    public KvConnection? Owner;

    /// <summary>The call sent to the shard's CPU; bound once so that sending it allocates nothing.</summary>
    public readonly Func<int> Run;

    /// <summary>The call sent with appendfsync always: completes once the batch's writes are fsynced.</summary>
    public readonly Func<ValueTask<int>> RunDurable;

    /// <summary>The batch wrote records that must reach the disk before its replies go out (appendfsync always).</summary>
    public bool NeedsSync;

    /// <summary>Completes when the group commit covering this batch is done.</summary>
    private ManualResetValueTaskSourceCore<int> _durable;

    /// <summary>Creates the batch for <paramref name="shard"/>.</summary>
    public ShardBatch(Shard shard)
    {
        Shard = shard;
        Run = Execute;
        RunDurable = ExecuteDurable;
    }

    private int Execute()
    {
        Shard.Execute(this);
        return Count;
    }

    /// <summary>Runs the batch on its shard (on the shard's CPU); the result completes once its writes are durable.</summary>
    public ValueTask<int> ExecuteDurable()
    {
        _durable.Reset();
        Shard.Execute(this);
        return NeedsSync ? new ValueTask<int>(this, _durable.Version) : new ValueTask<int>(Count);
    }

    /// <summary>The group commit covering this batch is done (on the shard's CPU).</summary>
    public void Durable() => _durable.SetResult(Count);

    /// <summary>The log could not be written: the connection must not acknowledge these writes (it closes instead).</summary>
    public void NotDurable(Exception error) => _durable.SetException(error);

    int IValueTaskSource<int>.GetResult(short token) => _durable.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _durable.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _durable.OnCompleted(continuation, state, token, flags);

    /// <summary>Adds a piece; returns its index.</summary>
    public int Add(CommandId id, int arg, int argCount, long n1 = 0, long n2 = 0, byte typeFilter = 0)
    {
        if (Count == Subs.Length) Array.Resize(ref Subs, Count * 2);
        Subs[Count] = new SubCommand { Id = id, Arg = arg, ArgCount = argCount, N1 = n1, N2 = n2, TypeFilter = typeFilter };
        return Count++;
    }

    /// <summary>Empties the batch for the next round.</summary>
    public void Reset()
    {
        Count = 0;
        NeedsSync = false;
        Reply.Reset();
    }
}
