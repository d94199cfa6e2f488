import DequeModule
import Foundation
import Synchronization

/// Threads for storage work that blocks (SQLite commits and their fsyncs),
/// outside Swift's cooperative pool: on two cores that pool has two threads,
/// and two partitions waiting on their disks would stop every query.
/// Shared by every partition of the process.
let storageThreads = ThreadPoolExecutor(name: "ragd-storage", threads: max(4, 2 * ProcessInfo.processInfo.activeProcessorCount))

/// Threads for callers that must wait on a partition's lock (a search while a
/// write swaps the index; a text read while another runs): they first try
/// without waiting on the cooperative thread they run on, and only on
/// contention move here to wait, so a large write never holds the pool that
/// serves every other call. Bounded: more waiters queue, without threads.
let waitingThreads = ThreadPoolExecutor(name: "ragd-wait", threads: 8)

/// An actor's executor that runs its jobs one at a time on `storageThreads`:
/// the actor keeps its ordering, and what it blocks on blocks a storage
/// thread, not a cooperative one.
final class StorageExecutor: SerialExecutor, Sendable {
    private let threads: ThreadPoolExecutor
    private let state = Mutex<(jobs: Deque<UnownedJob>, scheduled: Bool)>(([], false))
    /// Jobs run per turn before the actor yields its thread to other partitions.
    static let turn = 32

    init(threads: ThreadPoolExecutor = storageThreads) { self.threads = threads }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let schedule = state.withLock { s -> Bool in
            s.jobs.append(job)
            guard !s.scheduled else { return false }
            s.scheduled = true
            return true
        }
        if schedule { threads.submit { self.drain() } }
    }

    private func drain() {
        for _ in 0..<Self.turn {
            guard let job = state.withLock({ s -> UnownedJob? in
                if let j = s.jobs.popFirst() { return j }
                s.scheduled = false
                return nil
            }) else { return }
            job.runSynchronously(on: asUnownedSerialExecutor())
        }
        threads.submit { self.drain() }  // more jobs left: back of the line
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }
}
