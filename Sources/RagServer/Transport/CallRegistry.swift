import Synchronization

/// The calls in flight on one connection, so a CANCEL frame (or the connection
/// going away) can cancel exactly the right task.
final class CallRegistry: Sendable {
    private let calls = Mutex<[UInt64: Task<Void, Never>]>([:])

    /// Starts `body` as call `id`; false if a call with that id is still running.
    func start(_ id: UInt64, _ body: @escaping @Sendable () async -> Void) -> Bool {
        calls.withLock { calls in
            guard calls[id] == nil else { return false }
            // Created under the lock: the task's own `finish` waits for us, so the
            // entry always exists before it is removed.
            calls[id] = Task {
                await body()
                self.finish(id)
            }
            return true
        }
    }

    private func finish(_ id: UInt64) {
        _ = calls.withLock { $0.removeValue(forKey: id) }
    }

    func cancel(_ id: UInt64) {
        calls.withLock { $0[id] }?.cancel()
    }

    func cancelAll() {
        for t in calls.withLock({ Array($0.values) }) { t.cancel() }
    }

    /// Waits until every call now running has finished.
    func drain() async {
        while true {
            let running = calls.withLock { Array($0.values) }
            if running.isEmpty { return }
            for t in running { await t.value }
        }
    }

    var count: Int { calls.withLock { $0.count } }
}
