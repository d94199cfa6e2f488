import DequeModule
import Foundation
import Synchronization

/// Threads for storage work that blocks (SQLite commits and their fsyncs),
/// outside Swift's cooperative pool: on two cores that pool has two threads,
/// and two partitions waiting on their disks would stop every query.
final class StorageThreads: @unchecked Sendable {
    /// Shared by every partition of the process.
    static let shared = StorageThreads(threads: max(4, 2 * ProcessInfo.processInfo.activeProcessorCount))

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var work = Deque<@Sendable () -> Void>()

    init(threads: Int) {
        for i in 0..<threads {
            let thread = Thread { [self] in loop() }
            thread.name = "ragd-storage-\(i)"
            thread.start()
        }
    }

    func submit(_ body: @escaping @Sendable () -> Void) {
        condition.lock()
        work.append(body)
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while work.isEmpty { condition.wait() }
            let body = work.removeFirst()
            condition.unlock()
            body()
        }
    }
}

/// An actor's executor that runs its jobs one at a time on `StorageThreads`:
/// the actor keeps its ordering, and what it blocks on blocks a storage
/// thread, not a cooperative one.
final class StorageExecutor: SerialExecutor, Sendable {
    private let threads: StorageThreads
    private let state = Mutex<(jobs: Deque<UnownedJob>, scheduled: Bool)>(([], false))
    /// Jobs run per turn before the actor yields its thread to other partitions.
    static let turn = 32

    init(threads: StorageThreads = .shared) { self.threads = threads }

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
