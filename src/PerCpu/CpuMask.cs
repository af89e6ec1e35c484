using System.Numerics;
using System.Text;

namespace PerCpu;

/// <summary>
/// An immutable set of CPU ids (the seed's <c>cpumask_t</c>), of any size: more than 64 CPUs work. Build masks once and
/// reuse them; operations that change a mask return a new one.
/// </summary>
public readonly struct CpuMask : IEquatable<CpuMask>
{
    /// <summary>Bit i of word i / 64 is CPU i. Null for the empty mask; never mutated after construction.</summary>
    private readonly ulong[]? _words;

    private CpuMask(ulong[]? words) => _words = words;

    /// <summary>The empty mask.</summary>
    public static CpuMask Empty => default;

    /// <summary>CPUs 0 to <paramref name="count"/> - 1.</summary>
    public static CpuMask All(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count == 0) return default;
        var words = new ulong[(count + 63) >> 6];
        for (int i = 0; i < count; i++) words[i >> 6] |= 1UL << (i & 63);
        return new CpuMask(words);
    }

    /// <summary>A mask of the given CPU ids (duplicates are fine).</summary>
    public static CpuMask Of(params ReadOnlySpan<int> cpus)
    {
        int max = -1;
        foreach (int c in cpus)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(c, nameof(cpus));
            if (c > max) max = c;
        }
        if (max < 0) return default;
        var words = new ulong[(max >> 6) + 1];
        foreach (int c in cpus) words[c >> 6] |= 1UL << (c & 63);
        return new CpuMask(words);
    }

    /// <summary>True if CPU <paramref name="cpu"/> is in the mask.</summary>
    public bool Contains(int cpu)
    {
        ulong[]? w = _words;
        return w != null && cpu >= 0 && (cpu >> 6) < w.Length && (w[cpu >> 6] & (1UL << (cpu & 63))) != 0;
    }

    /// <summary>Number of CPUs in the mask.</summary>
    public int Count
    {
        get
        {
            int n = 0;
            if (_words != null) foreach (ulong w in _words) n += BitOperations.PopCount(w);
            return n;
        }
    }

    /// <summary>True if no CPU is in the mask.</summary>
    public bool IsEmpty => Count == 0;

    /// <summary>The highest CPU id in the mask, or -1 when empty.</summary>
    public int Highest
    {
        get
        {
            ulong[]? w = _words;
            if (w == null) return -1;
            for (int i = w.Length - 1; i >= 0; i--)
                if (w[i] != 0) return i * 64 + 63 - BitOperations.LeadingZeroCount(w[i]);
            return -1;
        }
    }

    /// <summary>This mask with <paramref name="cpu"/> added.</summary>
    public CpuMask With(int cpu) => this | Of(cpu);

    /// <summary>This mask with <paramref name="cpu"/> removed.</summary>
    public CpuMask Without(int cpu)
    {
        if (!Contains(cpu)) return this;
        var words = (ulong[])_words!.Clone();
        words[cpu >> 6] &= ~(1UL << (cpu & 63));
        return new CpuMask(words);
    }

    /// <summary>CPUs in either mask.</summary>
    public static CpuMask operator |(CpuMask a, CpuMask b) => Combine(a, b, static (x, y) => x | y);

    /// <summary>CPUs in both masks.</summary>
    public static CpuMask operator &(CpuMask a, CpuMask b) => Combine(a, b, static (x, y) => x & y);

    /// <summary>Equality of the CPU sets.</summary>
    public static bool operator ==(CpuMask a, CpuMask b) => a.Equals(b);

    /// <summary>Inequality of the CPU sets.</summary>
    public static bool operator !=(CpuMask a, CpuMask b) => !a.Equals(b);

    /// <summary>Word <paramref name="index"/> of the bitmap (zero past the end).</summary>
    internal ulong Word(int index)
    {
        ulong[]? w = _words;
        return w != null && index < w.Length ? w[index] : 0;
    }

    /// <summary>Number of 64-bit words in the bitmap.</summary>
    internal int WordCount => _words?.Length ?? 0;

    private static CpuMask Combine(CpuMask a, CpuMask b, Func<ulong, ulong, ulong> op)
    {
        int n = Math.Max(a.WordCount, b.WordCount);
        if (n == 0) return default;
        var words = new ulong[n];
        for (int i = 0; i < n; i++) words[i] = op(a.Word(i), b.Word(i));
        return new CpuMask(words);
    }

    /// <summary>Enumerates the CPU ids in ascending order without allocating.</summary>
    public Enumerator GetEnumerator() => new(this);

    /// <summary>Allocation-free enumerator over the CPU ids of a mask.</summary>
    public struct Enumerator
    {
        private readonly CpuMask _mask;
        private int _word;
        private ulong _bits;

        internal Enumerator(CpuMask mask)
        {
            _mask = mask;
            _word = 0;
            _bits = mask.Word(0);
            Current = -1;
        }

        /// <summary>The current CPU id.</summary>
        public int Current { get; private set; }

        /// <summary>Advances to the next CPU id.</summary>
        public bool MoveNext()
        {
            while (_bits == 0)
            {
                if (++_word >= _mask.WordCount) return false;
                _bits = _mask.Word(_word);
            }
            Current = _word * 64 + BitOperations.TrailingZeroCount(_bits);
            _bits &= _bits - 1;
            return true;
        }
    }

    /// <inheritdoc/>
    public bool Equals(CpuMask other)
    {
        int n = Math.Max(WordCount, other.WordCount);
        for (int i = 0; i < n; i++)
            if (Word(i) != other.Word(i)) return false;
        return true;
    }

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is CpuMask m && Equals(m);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        for (int i = 0; i < WordCount; i++) if (Word(i) != 0) { h.Add(i); h.Add(Word(i)); }
        return h.ToHashCode();
    }

    /// <summary>The ids as a list, for example <c>{0,2,5}</c>.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder("{");
        foreach (int c in this)
        {
            if (sb.Length > 1) sb.Append(',');
            sb.Append(c);
        }
        return sb.Append('}').ToString();
    }
}
