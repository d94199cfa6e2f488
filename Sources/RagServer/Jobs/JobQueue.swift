import Foundation
import RagCore
import RagWire

/// A job handed to one worker.
public struct ClaimedJob: Sendable {
    public let id: String
    /// The serialized `JobSpec` (for index jobs without documents: those are in parts).
    public let spec: Data
    /// 1 for the first attempt; a re-delivery after a lost worker counts as another.
    public let attempt: Int
}

/// What a running worker learns when it renews its claim.
public enum ClaimStatus: Sendable, Equatable {
    case owned
    /// Someone cancelled the job: stop and release it.
    case cancelled
    /// The claim expired and another worker took the job: stop without recording anything.
    case lost
}

/// A durable job queue, behind which the job runner does not care what
/// engine holds the jobs: SQLite for one server (`SQLiteJobQueue`), Redis
/// Streams with a consumer group for workers on several machines
/// (`RedisJobQueue`).
///
/// States: staging (parts still arriving) → queued → running → succeeded |
/// failed | cancelled; running → queued again after a retryable failure
/// (after a backoff) or when its worker is lost.
public protocol JobQueue: Sendable {
    /// "sqlite" or "redis", for Stats and GetJob.
    var backend: String { get }
    /// Stores a new job. An index job's documents go in `part` (a serialized
    /// `IndexRequest` carrying only documents); `staging` jobs wait for more parts.
    func create(id: String, kind: String, spec: Data, part: Data?, total: Int, staging: Bool) async throws
    /// Adds documents to a staging job; `seal` queues it.
    func append(id: String, part: Data, count: Int, seal: Bool) async throws
    func partCount(id: String) async throws -> Int
    func part(id: String, index: Int) async throws -> Data
    /// Takes the next ready job of `kind` (or one whose worker stopped renewing its claim).
    func claim(kind: String, worker: String) async throws -> ClaimedJob?
    /// Renews the claim of a running job (called every third of the visibility timeout).
    func heartbeat(id: String, worker: String) async throws -> ClaimStatus
    /// Records documents done, if `worker` still holds the job; otherwise says
    /// whether it was cancelled or taken over (then the worker stops).
    func progress(id: String, worker: String, done: Int) async throws -> ClaimStatus
    func finish(id: String, result: Data) async throws
    /// Records a failed attempt: queued again after `retryAfter` seconds, or failed when nil.
    func failAttempt(id: String, error: String, retryAfter: Double?) async throws
    /// Gives a running job back to the queue because its worker is stopping.
    func handBack(id: String, note: String) async throws
    /// Lets go of a cancelled job's delivery and its stored documents.
    func release(id: String) async
    /// Cancels a job that has not finished; false when it already had.
    func cancel(id: String) async throws -> Bool
    func get(id: String) async throws -> Ragd_V1_Job?
    func list(state: String) async throws -> [Ragd_V1_Job]
    /// Jobs of `kind` waiting for a worker (including retries in backoff).
    func waiting(kind: String) async throws -> Int
    /// Deletes jobs that finished (succeeded, failed, cancelled) more than
    /// `age` seconds ago; returns how many.
    func purge(olderThan age: Double) async throws -> Int
    /// Fails staging jobs that received no part for `idle` seconds (a client that
    /// uploaded some parts and went away) and drops their parts; returns their ids.
    func expireStaging(idleFor idle: Double) async throws -> [String]
    /// Lets go of files or connections (at shutdown).
    func close() async
}

extension JobQueue {
    public func close() async {}
}

extension JobQueue {
    /// What an expired upload's job says, in GetJob and ListJobs.
    static func stagingExpiredMessage(_ idle: Double) -> String {
        "upload abandoned: no part arrived for \(Int(idle)) s (--job-staging-timeout); its documents were discarded and nothing was indexed"
    }
}

extension JobQueue {
    /// Errors of a queue as RagErrors (UNAVAILABLE for a Redis outage, INTERNAL for SQLite).
    func checked<T>(_ body: () async throws -> T) async throws(RagError) -> T {
        do { return try await body() } catch { throw RagError(from: error) }
    }
}

/// The submitting key, as the stored spec records it (the spec of an index job
/// holds no documents, so decoding it is cheap).
enum JobSpecOwner {
    static func of(_ spec: Data) -> String {
        (try? Ragd_V1_JobSpec(serializedBytes: spec))?.owner ?? ""
    }
}
