import DequeModule
import Foundation

/// A task executor with threads of its own. Work that blocks a thread for long
/// (embedding: BLAS, a tokenizer, a busy model) runs here through
/// `withTaskExecutorPreference`, so it never occupies the cooperative pool that
/// serves calls, `/metrics` and Stats: on two cores, two blocked cooperative
/// threads stop everything else in the process.
public final class ThreadPoolExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    // Guarded by `condition`: tasks' jobs and submitted closures, in arrival order.
    private var jobs = Deque<@Sendable () -> Void>()
    private var stopped = false

    /// Starts `threads` threads named `name-N`.
    public init(name: String, threads: Int) {
        for i in 0..<max(1, threads) {
            let thread = Thread { [self] in loop() }
            thread.name = "\(name)-\(i)"
            thread.stackSize = 4 << 20
            thread.start()
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        submit { [self] in job.runSynchronously(on: asUnownedTaskExecutor()) }
    }

    /// Runs `body` on one of the threads.
    public func submit(_ body: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(body)
        condition.signal()
        condition.unlock()
    }

    /// Lets the threads finish the jobs already queued and exit.
    public func shutdown() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            guard let job = jobs.popFirst() else {
                condition.unlock()
                return
            }
            condition.unlock()
            job()
        }
    }
}
