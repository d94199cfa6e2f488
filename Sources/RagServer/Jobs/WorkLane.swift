import DequeModule
import RagWire
import Synchronization

/// A bounded pool for one kind of work: at most `workers` bodies run at once,
/// each on a thread of the lane's own, the rest wait in arrival order. Indexing and queries embed in separate
/// lanes, so a large indexing job fills its own lane and never delays a
/// query's embedding. A waiter that is cancelled leaves the line at once.
public final class WorkLane: Sendable {
    public let name: String
    public let workers: Int

    struct State {
        var busy = 0
        var completed: UInt64 = 0
        var nextTicket: UInt64 = 0
        /// First come, first served: a Deque, so taking the head is O(1).
        var waiters = Deque<(ticket: UInt64, continuation: CheckedContinuation<Void, any Error>)>()
    }
    private let state = Mutex(State())

    /// One thread per worker: the lane's bodies run there, off the cooperative pool.
    let executor: ThreadPoolExecutor

    public init(name: String, workers: Int) {
        self.name = name
        self.workers = max(1, workers)
        executor = ThreadPoolExecutor(name: name, threads: self.workers)
    }

    deinit { executor.shutdown() }

    /// Runs `body` on one of the lane's own threads once a worker is free.
    public func run<T>(_ body: () async throws -> T) async throws -> T {
        try await acquire()
        defer { release() }
        return try await withTaskExecutorPreference(executor) { try await body() }
    }

    func acquire() async throws {
        let ticket: UInt64? = state.withLock { s in
            if s.busy < workers && s.waiters.isEmpty { s.busy += 1; return nil }
            s.nextTicket += 1
            return s.nextTicket
        }
        guard let ticket else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                // Checked under the lock the cancellation handler also takes:
                // either it sees this waiter, or this sees the cancellation.
                let outcome: Bool? = state.withLock { s in
                    if Task.isCancelled { return false }
                    // A slot may have freed up between the two locks.
                    if s.busy < workers && s.waiters.isEmpty { s.busy += 1; return true }
                    s.waiters.append((ticket, c))
                    return nil
                }
                switch outcome {
                case true?: c.resume()
                case false?: c.resume(throwing: CancellationError())
                case nil: break
                }
            }
        } onCancel: {
            let c: CheckedContinuation<Void, any Error>? = state.withLock { s in
                guard let i = s.waiters.firstIndex(where: { $0.ticket == ticket }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            c?.resume(throwing: CancellationError())
        }
    }

    func release() {
        // The slot passes straight to the first waiter (busy stays the same).
        let next: CheckedContinuation<Void, any Error>? = state.withLock { s in
            s.completed += 1
            if s.waiters.isEmpty { s.busy -= 1; return nil }
            return s.waiters.removeFirst().continuation
        }
        next?.resume()
    }

    public var stats: Ragd_V1_WorkQueueStats {
        state.withLock { s in
            Ragd_V1_WorkQueueStats.with {
                $0.name = name
                $0.workers = UInt32(workers)
                $0.busy = UInt32(s.busy)
                $0.waiting = UInt32(s.waiters.count)
                $0.completed = s.completed
            }
        }
    }
}

extension Coordinator {
    /// Every bounded pool of this node, for Stats and /metrics: the job pools
    /// (when this node runs jobs) and the two embedding lanes.
    func workQueues(jobs: JobRunner?) async -> [Ragd_V1_WorkQueueStats] {
        (await jobs?.stats() ?? []) + [indexEmbedding.stats, queryEmbedding.stats]
    }
}
