import Synchronization

/// Hard limits that keep one client (or many) from exhausting the server. Each
/// is a plain number in the configuration; each breach has its own status code.
public struct ConnectionLimits: Sendable, Hashable {
    /// Open connections; one more is answered with an ERROR RESOURCE_EXHAUSTED
    /// frame and closed (never left hanging in the accept queue).
    public var maxConnections = 1024
    /// A connection with no call in flight and no bytes either way for this long is closed.
    public var idleTimeout: Duration = .seconds(300)
    /// A frame whose first byte arrived must be complete within this (slow-loris).
    public var frameTimeout: Duration = .seconds(30)
    /// Calls in flight on one connection; one more is RESOURCE_EXHAUSTED.
    public var maxCallsPerConnection = 128
    /// Calls in flight on the whole server; one more is RESOURCE_EXHAUSTED.
    public var maxCallsPerServer = 4096
    /// Response bytes one connection may have queued but not yet written to the
    /// socket. Past it the server stops reading that client's requests and its
    /// calls wait to send; if nothing drains for `slowReaderGrace`, it is closed.
    public var maxUnsentBytesPerConnection = 32 * 1024 * 1024
    public var slowReaderGrace: Duration = .seconds(10)
    /// Bytes of incomplete frames held for all connections together; a frame
    /// that would go past it is refused with RESOURCE_EXHAUSTED and its
    /// connection closed.
    public var maxBufferedFrameBytes = 256 * 1024 * 1024

    public init() {}
}

/// Server-wide counters the limits are checked against, shared by every connection.
final class ConnectionBudget: Sendable {
    let limits: ConnectionLimits
    let open = Atomic<Int>(0)
    let bufferedFrameBytes = Atomic<Int>(0)
    let callsInFlight = Atomic<Int>(0)

    init(limits: ConnectionLimits) { self.limits = limits }

    /// Takes a connection slot; false when the server is full, or when taking
    /// one would eat into the descriptors kept for storage and libraries.
    func admitConnection() -> Bool {
        guard FileDescriptors.headroom > 0 else { return false }
        return Self.take(1, from: open, limit: limits.maxConnections)
    }

    /// Adds `amount` to `counter` unless that would pass `limit`.
    private static func take(_ amount: Int, from counter: borrowing Atomic<Int>, limit: Int) -> Bool {
        if counter.wrappingAdd(amount, ordering: .relaxed).newValue > limit {
            counter.wrappingSubtract(amount, ordering: .relaxed)
            return false
        }
        return true
    }

    func connectionClosed() { open.wrappingSubtract(1, ordering: .relaxed) }

    /// Accounts `bytes` more of incomplete frames; false (and nothing taken) when over budget.
    func holdFrameBytes(_ bytes: Int) -> Bool {
        Self.take(bytes, from: bufferedFrameBytes, limit: limits.maxBufferedFrameBytes)
    }

    func releaseFrameBytes(_ bytes: Int) {
        if bytes > 0 { bufferedFrameBytes.wrappingSubtract(bytes, ordering: .relaxed) }
    }

    /// Takes a server-wide call slot; false when the server is at its limit.
    func admitCall() -> Bool {
        Self.take(1, from: callsInFlight, limit: limits.maxCallsPerServer)
    }

    func callEnded() { callsInFlight.wrappingSubtract(1, ordering: .relaxed) }
}
