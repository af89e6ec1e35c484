using PerCpu.Benchmarks.Harness;

namespace PerCpu.Benchmarks.PerCpuRows;

/// <summary>
/// PerCpu throughput rows. A driver posted onto CPU 0 sends N numbered messages to CPU 1 (through the per-pair SPSC
/// ring with batched publication), then waits with WaitFor until the last has run; CPU 1's counter checks that
/// each message ran exactly once, in order.
/// </summary>
internal static class SendRows
{
    public const string Send = "percpu.send";

    public static IEnumerable<BenchRow> Rows()
    {
        yield return new BenchRow
        {
            Key = Send, Name = "PerCpu Send CPU0 -> CPU1 (busy target)", Kind = RowKind.Throughput, Group = RowGroup.PerCpu,
            CompareWith = "c.ring", QuickCount = 20_000,
            What = "driver on CPU 0 loops runtime[1].Send(static fn, counter, i); WaitFor(last); default options, pinned",
            Run = SendRun,
        };
        yield return new BenchRow
        {
            Key = "percpu.sendtomask", Name = "PerCpu SendToMask {0,1} from CPU 0", Kind = RowKind.Throughput, Group = RowGroup.PerCpu,
            CompareWith = "c.ring", QuickCount = 20_000,
            What = "driver on CPU 0 loops SendToMask({0,1}, fn, counters, i): a direct call on CPU 0 + a ring message to CPU 1; value = messages delivered/s",
            Run = SendToMaskRun,
        };
    }

    private sealed class SendDriver(CpuRuntime runtime, SeqCounter counter, long n) : CpuJob
    {
        /// <summary>Runs on CPU 0.</summary>
        public void Drive()
        {
            try
            {
                Cpu target = runtime[1];
                Action<object?, long> fn = SeqCounter.Deliver;
                StartClock();
                long seq = 0;
                for (long i = 0; i < n; i++) seq = target.Send(fn, counter, i);
                target.WaitFor(seq);   // flushes the last batch and returns once CPU 1 has run it
                StopClock();
            }
            catch (Exception e)
            {
                Fail(e);
            }
        }
    }

    private static RunSample SendRun(long n)
    {
        using CpuRuntime runtime = Runtimes.Start();
        var counter = new SeqCounter();
        var driver = new SendDriver(runtime, counter, n);
        CpuStatistics before = runtime.GetStatistics();
        driver.Run(runtime, () => runtime[0].Post(driver.Drive));
        CpuStatistics s = runtime.GetStatistics() - before;
        counter.Verify(n, "PerCpu Send");
        return new RunSample(driver.Seconds, n, driver.AllocatedBytes,
            Note: $"fifofull {s.FifoFull}, wakes {s.WakesSent}, avoided {s.Avoided}");
    }

    private sealed class MaskDriver(CpuRuntime runtime, SeqCounter[] counters, long n) : CpuJob
    {
        /// <summary>Runs on whichever CPU receives it: the counter of that CPU checks its own stream.</summary>
        public static readonly Action<object?, long> Deliver = static (o, v) => ((SeqCounter[])o!)[Cpu.Current!.Id].Take(v);

        private static readonly Action<object?, long> Nothing = static (_, _) => { };

        /// <summary>Runs on CPU 0.</summary>
        public void Drive()
        {
            try
            {
                CpuMask mask = CpuMask.Of(0, 1);
                Action<object?, long> fn = Deliver;
                StartClock();
                for (long i = 0; i < n; i++) runtime.SendToMask(mask, fn, counters, i);
                Cpu target = runtime[1];
                target.WaitFor(target.Send(Nothing));   // ring order: once this has run, so has every earlier message
                StopClock();
            }
            catch (Exception e)
            {
                Fail(e);
            }
        }
    }

    private static RunSample SendToMaskRun(long n)
    {
        using CpuRuntime runtime = Runtimes.Start();
        SeqCounter[] counters = [new SeqCounter(), new SeqCounter()];
        var driver = new MaskDriver(runtime, counters, n);
        driver.Run(runtime, () => runtime[0].Post(driver.Drive));
        counters[0].Verify(n, "PerCpu SendToMask, CPU 0");
        counters[1].Verify(n, "PerCpu SendToMask, CPU 1");
        return new RunSample(driver.Seconds, 2 * n, driver.AllocatedBytes);
    }
}
