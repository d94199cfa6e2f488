import Foundation

/// Fault injection for crash tests, as databases do it (FoundationDB, TiKV's
/// fail-rs): `RAGD_FAILPOINT=job-batch:N:kill` makes this process SIGKILL
/// itself right after an index job's N-th committed batch (progress saved),
/// `job-batch:N:pause` makes that job stop there until the process is
/// stopped; `reindex-page:N:…` does the same after a reindex's N-th committed
/// page, and `reindex-page:N:slow` waits 200 ms after that page and every later
/// one (so tests can write and query while a build runs). Tests use it to stop
/// a worker at an exact point of a job instead of racing a poll against a fast
/// job. Unset, it costs one comparison.
struct Failpoint: Sendable {
    enum Action: String, Sendable { case kill, pause, slow }
    let point: String
    let count: Int
    let action: Action

    static let current: Failpoint? = {
        guard let spec = ProcessInfo.processInfo.environment["RAGD_FAILPOINT"] else { return nil }
        let parts = spec.split(separator: ":")
        guard parts.count == 3, ["job-batch", "reindex-page"].contains(parts[0]), let n = Int(parts[1]),
              let a = Action(rawValue: String(parts[2])) else { return nil }
        return Failpoint(point: String(parts[0]), count: n, action: a)
    }()

    /// Called after each committed batch of an index job, with the process-wide count.
    static func jobBatchCommitted(_ count: Int) async throws {
        try await hit("job-batch", count)
    }

    /// Called after each committed page of a reindex, with the process-wide count.
    static func reindexPageCommitted(_ count: Int) async throws {
        try await hit("reindex-page", count)
    }

    static func hit(_ point: String, _ count: Int) async throws {
        guard let f = current, f.point == point, f.action == .slow ? count >= f.count : count == f.count else { return }
        switch f.action {
        case .kill:
            kill(getpid(), SIGKILL)
        case .pause:
            while true { try await Task.sleep(for: .seconds(3600)) }
        case .slow:
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}
