import Synchronization

/// Tells open connections that the server is draining: each stops reading new
/// requests, finishes its calls in flight, then closes.
final class ShutdownSignal: Sendable {
    private struct State {
        var triggered = false
        var next = 0
        var actions: [Int: @Sendable () -> Void] = [:]
    }

    private let state = Mutex(State())

    /// Registers `action`; runs it at once if shutdown already began.
    func register(_ action: @escaping @Sendable () -> Void) -> Int {
        let (token, runNow) = state.withLock { s -> (Int, Bool) in
            s.next += 1
            if !s.triggered { s.actions[s.next] = action }
            return (s.next, s.triggered)
        }
        if runNow { action() }
        return token
    }

    /// True once the server began draining.
    var isTriggered: Bool { state.withLock { $0.triggered } }

    func unregister(_ token: Int) {
        _ = state.withLock { $0.actions.removeValue(forKey: token) }
    }

    func trigger() {
        let actions = state.withLock { s -> [@Sendable () -> Void] in
            s.triggered = true
            defer { s.actions = [:] }
            return Array(s.actions.values)
        }
        for a in actions { a() }
    }
}
