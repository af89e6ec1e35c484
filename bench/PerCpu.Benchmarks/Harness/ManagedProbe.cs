using System.Diagnostics;
using System.Runtime.Intrinsics.X86;

namespace PerCpu.Benchmarks.Harness;

/// <summary>The placement probe in C#, for machines without gcc: the same bounce, cap and sentinel as the native probe.</summary>
internal sealed class ManagedProbe : IPlacementProbe
{
    private const int RoundTrips = 20_000;

    /// <summary>On an overloaded machine the two pinned threads are rarely on-CPU together; stop, the gate rejects it anyway.</summary>
    private static readonly long MaxTicks = Stopwatch.Frequency / 20;   // 50 ms

    /// <summary>Reading when not one round trip completed in time (1000 s): no gate accepts it.</summary>
    private const double NoRoundTrip = 1e12;

    public string Description => "managed probe (C# threads pinned to CPU 0/1, up to 20k round trips of one line in 50 ms)";

    public IReadOnlyList<double> Measure(int count, int intervalMs)
    {
        RoundTripNs(RoundTrips / 10);   // warm-up: JIT, thread start-up
        var result = new List<double>(count);
        for (int i = 0; i < count; i++)
        {
            if (i > 0 && intervalMs > 0) Thread.Sleep(intervalMs);
            result.Add(RoundTripNs(RoundTrips));
        }
        return result;
    }

    /// <summary>Both threads take turns writing one padded word: two line transfers per round trip, no queue.</summary>
    public static double RoundTripNs(int n)
    {
        var cell = new PaddedCell();
        var ready = new PaddedCell();
        var stop = new PaddedCell();   // not a value of cell: a ponger mid-reply would overwrite it and wait forever
        double ns = NoRoundTrip;
        ThreadPair.Run(
            () =>
            {
                long deadline = Stopwatch.GetTimestamp() + MaxTicks;
                if (!SpinUntil(ref ready.Value, 1, deadline)) { Volatile.Write(ref stop.Value, 1); return; }
                long t0 = Stopwatch.GetTimestamp(), done = 0;
                for (long i = 0; i < n; i++)
                {
                    Volatile.Write(ref cell.Value, 2 * i + 1);
                    if (!SpinUntil(ref cell.Value, 2 * i + 2, deadline)) break;   // the round trip in flight is not counted
                    done++;
                    if ((done & 15) == 0 && Stopwatch.GetTimestamp() > deadline) break;
                }
                long t1 = Stopwatch.GetTimestamp();
                Volatile.Write(ref stop.Value, 1);
                if (done > 0) ns = Stopwatch.GetElapsedTime(t0, t1).TotalNanoseconds / done;
            },
            () =>
            {
                Volatile.Write(ref ready.Value, 1);
                for (long i = 0; i < n; i++)
                {
                    for (int spins = 1; Volatile.Read(ref cell.Value) != 2 * i + 1; spins++)
                    {
                        X86Base.Pause();   // the stop flag is read rarely, so the bounce stays a one-line bounce
                        if ((spins & 1023) == 0 && Volatile.Read(ref stop.Value) != 0) return;
                    }
                    Volatile.Write(ref cell.Value, 2 * i + 2);
                }
            },
            firstCpu: 0, secondCpu: 1);
        return ns;
    }

    /// <summary>Spins (with PAUSE) until the cell holds <paramref name="value"/>; false once the deadline has passed (clock read every 1024 pauses).</summary>
    private static bool SpinUntil(ref long cell, long value, long deadline)
    {
        for (int spins = 1; Volatile.Read(ref cell) != value; spins++)
        {
            X86Base.Pause();
            if ((spins & 1023) == 0 && Stopwatch.GetTimestamp() > deadline) return false;
        }
        return true;
    }
}
