import Synchronization

/// Bytes of answers one connection has queued but the socket has not taken yet.
/// Senders wait while the queue is over its limit (backpressure, not buffering),
/// and the connection's guard closes a client that has not drained it for the
/// grace period: a client that never reads cannot grow the server.
final class OutputBudget: Sendable {
    let limit: Int

    private struct State {
        var queued = 0
        var overSince: ContinuousClock.Instant?
        var closed = false
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
    }
    private let state = Mutex(State())

    init(limit: Int) { self.limit = max(1, limit) }

    /// Takes `bytes` of the budget, waiting while the queue is full. A single
    /// answer larger than the whole budget still goes when the queue is empty.
    func reserve(_ bytes: Int) async throws {
        while true {
            let admitted = try state.withLock { s -> Bool in
                if s.closed { throw CancellationError() }
                if s.queued == 0 || s.queued + bytes <= limit {
                    s.queued += bytes
                    return true
                }
                if s.overSince == nil { s.overSince = .now }
                return false
            }
            if admitted { return }
            try await waitForRoom(fitting: bytes)
        }
    }

    /// Waits until the queue is below its limit (the reader side stops taking
    /// new requests meanwhile).
    func waitUntilBelowLimit() async throws {
        while try state.withLock({ s -> Bool in
            if s.closed { throw CancellationError() }
            if s.queued > limit, s.overSince == nil { s.overSince = .now }
            return s.queued > limit
        }) {
            try await waitForRoom(fitting: nil)
        }
    }

    /// The socket took `bytes`.
    func release(_ bytes: Int) {
        // Every waiter looks again: whoever fits now goes.
        let wake = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.queued -= bytes
            if s.queued <= limit { s.overSince = nil }
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in wake { w.resume() }
    }

    /// The connection is gone: every waiter fails and later reservations too.
    func close() {
        let wake = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.closed = true
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in wake { w.resume(throwing: CancellationError()) }
    }

    /// How long the queue has been over its limit, if it is.
    func stalled(now: ContinuousClock.Instant = .now) -> Duration? {
        state.withLock { s in s.overSince.map { now - $0 } }
    }

    var queued: Int { state.withLock { $0.queued } }

    /// Waits until `bytes` more fit (nil: until the queue is within its limit).
    private func waitForRoom(fitting bytes: Int?) async throws {
        let id = state.withLock { s -> UInt64 in s.nextWaiter += 1; return s.nextWaiter }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = state.withLock { s in
                    if s.closed || Task.isCancelled { return .failure(CancellationError()) }
                    let fits = bytes.map { s.queued == 0 || s.queued + $0 <= limit } ?? (s.queued <= limit)
                    if fits { return .success(()) }
                    s.waiters[id] = c
                    return nil
                }
                if let outcome { c.resume(with: outcome) }
            }
        } onCancel: {
            let c = state.withLock { $0.waiters.removeValue(forKey: id) }
            c?.resume(throwing: CancellationError())
        }
    }
}
