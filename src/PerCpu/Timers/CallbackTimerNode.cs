namespace PerCpu.Timers;

/// <summary>A <see cref="TimerNode"/> that calls a delegate with a state object: a static lambda and a state, no closure.</summary>
internal sealed class CallbackTimerNode : TimerNode
{
    private readonly Action<CallbackTimerNode, object?> _callback;

    /// <summary>Passed back to the callback; may be replaced between firings.</summary>
    public object? State { get; set; }

    public CallbackTimerNode(Action<CallbackTimerNode, object?> callback, object? state = null)
    {
        ArgumentNullException.ThrowIfNull(callback);
        _callback = callback;
        State = state;
    }

    protected internal override void Fire() => _callback(this, State);
}
