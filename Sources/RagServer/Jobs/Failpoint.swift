import Foundation

/// Fault injection for crash tests, as databases do it (FoundationDB, TiKV's
/// fail-rs): `RAGD_FAILPOINT=job-batch:N:kill` makes this process SIGKILL
/// itself right after an index job's N-th committed batch (progress saved),
/// `job-batch:N:pause` makes that job stop there until the process is
/// stopped. Tests use it to stop a worker at an exact point of a job instead
/// of racing a poll against a fast job. Unset, it costs one comparison.
struct Failpoint: Sendable {
    enum Action: String, Sendable { case kill, pause }
    let batch: Int
    let action: Action

    static let current: Failpoint? = {
        guard let spec = ProcessInfo.processInfo.environment["RAGD_FAILPOINT"] else { return nil }
        let parts = spec.split(separator: ":")
        guard parts.count == 3, parts[0] == "job-batch", let n = Int(parts[1]), let a = Action(rawValue: String(parts[2])) else { return nil }
        return Failpoint(batch: n, action: a)
    }()

    /// Called after each committed batch of an index job, with the process-wide count.
    static func jobBatchCommitted(_ count: Int) async throws {
        guard let f = current, f.batch == count else { return }
        switch f.action {
        case .kill:
            kill(getpid(), SIGKILL)
        case .pause:
            while true { try await Task.sleep(for: .seconds(3600)) }
        }
    }
}
