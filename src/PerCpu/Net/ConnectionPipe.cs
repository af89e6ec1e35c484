using System.Buffers;
using System.IO.Pipelines;

namespace PerCpu.Net;

/// <summary>
/// The <see cref="IDuplexPipe"/> view of a <see cref="CpuConnection"/> (<see cref="CpuConnection.Transport"/>): two
/// pipes and two loops on the owning CPU, Kestrel's socket-transport shape. The receive loop fills
/// <see cref="Input"/> with <see cref="CpuConnection.ReceiveAsync"/>; the send loop drains <see cref="Output"/> with one
/// gathering <see cref="CpuConnection.SendAsync(ReadOnlySequence{byte}, CancellationToken)"/> per read, so a handler
/// that writes a batch of replies and flushes once sends them in one call. Both pipes run their continuations on the
/// CPU (<see cref="CpuPipeScheduler"/>); the output pipe pauses the writer past 64 KiB unsent (backpressure). Owner only.
/// </summary>
internal sealed class ConnectionPipe : IDuplexPipe
{
    private const int PauseThreshold = 64 * 1024, ResumeThreshold = 32 * 1024, SegmentSize = 4096;

    private readonly CpuConnection _connection;
    private readonly Pipe _input, _output;
    private readonly Task _receiving, _sending;

    public ConnectionPipe(CpuConnection connection)
    {
        _connection = connection;
        var scheduler = new CpuPipeScheduler(connection.Cpu);
        var options = new PipeOptions(pool: null, readerScheduler: scheduler, writerScheduler: scheduler,
            pauseWriterThreshold: PauseThreshold, resumeWriterThreshold: ResumeThreshold, minimumSegmentSize: SegmentSize,
            useSynchronizationContext: false);
        _input = new Pipe(options);
        _output = new Pipe(options);
        _receiving = ReceiveLoopAsync();
        _sending = SendLoopAsync();
    }

    public PipeReader Input => _input.Reader;

    public PipeWriter Output => _output.Writer;

    private async Task ReceiveLoopAsync()
    {
        Exception? error = null;
        PipeWriter writer = _input.Writer;
        try
        {
            while (true)
            {
                int n = await _connection.ReceiveAsync(writer.GetMemory(SegmentSize));
                if (n == 0) break; // end of stream: the reader sees IsCompleted
                writer.Advance(n);
                FlushResult result = await writer.FlushAsync();
                if (result.IsCompleted) break; // the reader is done
            }
        }
        catch (Exception e)
        {
            error = e;
        }
        finally
        {
            await writer.CompleteAsync(error);
        }
    }

    private async Task SendLoopAsync()
    {
        Exception? error = null;
        PipeReader reader = _output.Reader;
        try
        {
            while (true)
            {
                ReadResult result = await reader.ReadAsync();
                ReadOnlySequence<byte> buffer = result.Buffer;
                if (!buffer.IsEmpty) await _connection.SendAsync(buffer);
                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted || result.IsCanceled) break;
            }
        }
        catch (Exception e)
        {
            error = e;
        }
        finally
        {
            await reader.CompleteAsync(error);
        }
    }

    /// <summary>
    /// The connection's disposal: ends the output (if the handler did not), waits until everything written was sent,
    /// closes the connection, and waits for the receive loop, which ends with the close.
    /// </summary>
    public async Task CloseAsync()
    {
        try
        {
            await _output.Writer.CompleteAsync();
            await _sending;
        }
        finally
        {
            _connection.CloseAfterPipe();
        }
        // A receive loop blocked on a full input (nobody reads it any more) would never see the close: end the reader.
        await _input.Reader.CompleteAsync();
        await _receiving;
    }
}

/// <summary>Runs pipe continuations on one CPU: in its task phase (a local task from the CPU itself, a post from elsewhere).</summary>
internal sealed class CpuPipeScheduler(Cpu cpu) : PipeScheduler
{
    public override void Schedule(Action<object?> action, object? state) => cpu.EnqueueTask(new Dispatch.TaskItem(action, state));
}
