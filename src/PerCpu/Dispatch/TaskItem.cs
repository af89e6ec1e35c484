namespace PerCpu.Dispatch;

/// <summary>
/// A unit of task-level work on a CPU: a callback and its state. The callback is one of a few delegate shapes
/// (see <see cref="Run"/>) so that posting never has to wrap it in a new object.
/// </summary>
internal readonly struct TaskItem(object callback, object? state)
{
    public readonly object Callback = callback;
    public readonly object? State = state;

    public void Run(Cpu cpu)
    {
        switch (Callback)
        {
            case Action<object?> a: a(State); break;
            case SendOrPostCallback d: d(State); break;
            case Action a: a(); break;
            case Task t: cpu.TaskSchedulerCore.Execute(t); break;
            default: throw new InvalidOperationException($"Unknown task item {Callback.GetType()}.");
        }
    }
}

/// <summary>
/// The CPU-local task queue: a growable circular buffer touched only by the owning CPU thread (no synchronization).
/// Work from other threads arrives through IPIs or the remote queue and is moved here by the owner.
/// </summary>
internal sealed class LocalTaskQueue
{
    private TaskItem[] _items = new TaskItem[64];
    private int _head;
    private int _count;

    public int Count => _count;

    public void Enqueue(in TaskItem item)
    {
        if (_count == _items.Length) Grow();
        _items[(_head + _count) & (_items.Length - 1)] = item;
        _count++;
    }

    public bool TryDequeue(out TaskItem item)
    {
        if (_count == 0)
        {
            item = default;
            return false;
        }
        ref TaskItem slot = ref _items[_head];
        item = slot;
        slot = default; // do not keep the callback's state alive
        _head = (_head + 1) & (_items.Length - 1);
        _count--;
        return true;
    }

    private void Grow()
    {
        var bigger = new TaskItem[_items.Length * 2];
        for (int i = 0; i < _count; i++) bigger[i] = _items[(_head + i) & (_items.Length - 1)];
        _items = bigger;
        _head = 0;
    }
}
