/// The deadline of the call being served, visible to everything it calls, so
/// each hop to a shard gets the remaining budget (not a fresh one).
public enum CallDeadline {
    @TaskLocal public static var current: ContinuousClock.Instant?

    /// Time left, or nil when the call has no deadline.
    public static var remaining: Duration? { current.map { $0 - .now } }
}
