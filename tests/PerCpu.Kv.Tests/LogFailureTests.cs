using System.Reflection;
using PerCpu.Kv.Protocol;
using PerCpu.Kv.Server;
using PerCpu.Kv.Store;

namespace PerCpu.Kv.Tests;

/// <summary>A log that cannot be written never lets a write be acknowledged as durable.</summary>
public sealed class LogFailureTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("percpu-kv-fail-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task WriteFails_WaitingBatchesFail_AndLaterOnesAtOnce()
    {
        await using CpuRuntime runtime = CpuRuntime.Start(new CpuRuntimeOptions { CpuCount = 1, PinThreads = false });
        var shard = new Shard(0, runtime[0], TimeProvider.System);
        Exception? reported = null;
        var aof = new AppendOnlyFile(Path.Combine(_dir, "shard-0.aof"), AppendFsync.Always, _ => { }, long.MaxValue, e => reported = e);
        // Break the file under the log, as a failing disk would: the next write throws.
        var file = (FileStream)typeof(AppendOnlyFile).GetField("_file", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(aof)!;
        file.Dispose();

        var batch = new ShardBatch(shard);
        aof.Append(3, "SET"u8, "k"u8, "v"u8);
        aof.Wait(batch);
        ValueTask<int> durable = new(batch, 0);
        await runtime[0].InvokeAsync(() => aof.FlushAsync());
        await Assert.ThrowsAsync<IOException>(async () => await durable);
        Assert.NotNull(reported);
        Assert.Contains("restart", aof.Failure!.Message);

        // Later batches fail at once, and nothing more is buffered.
        var later = new ShardBatch(shard);
        aof.Append(2, "DEL"u8, "k"u8);
        aof.Wait(later);
        Assert.False(aof.HasPending);
        await Assert.ThrowsAsync<IOException>(async () => await new ValueTask<int>(later, 0));
        aof.Dispose();
    }
}
