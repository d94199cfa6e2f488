import Foundation
import GRDB
import RagCore
import RagStore
import RagWire

/// The default job queue: `jobs.sqlite` in the data directory, for one server.
/// A job survives a restart; one found `running` at start was interrupted and
/// is queued again (index jobs are idempotent, so re-running is safe).
public final class SQLiteJobQueue: JobQueue {
    public var backend: String { "sqlite" }
    let queue: DatabaseQueue

    public func close() async { try? queue.close() }

    public init(path: String) throws(RagError) {
        do {
            queue = try SQLiteFile.openQueue(path: path, synchronous: .full) { m in
                m.registerMigration("v1") { db in
                    try db.execute(sql: """
                        CREATE TABLE job (id TEXT PRIMARY KEY, kind TEXT NOT NULL, spec BLOB NOT NULL, state TEXT NOT NULL,
                                          attempts INTEGER NOT NULL DEFAULT 0, errors TEXT NOT NULL DEFAULT '[]',
                                          backoffs TEXT NOT NULL DEFAULT '[]', created_at REAL NOT NULL, started_at REAL NOT NULL DEFAULT 0,
                                          finished_at REAL NOT NULL DEFAULT 0, next_run_at REAL NOT NULL, progress_done INTEGER NOT NULL DEFAULT 0,
                                          progress_total INTEGER NOT NULL DEFAULT 0, result BLOB);
                        CREATE INDEX job_ready ON job(state, kind, next_run_at);
                        """)
                }
                m.registerMigration("v2-parts") { db in
                    // Documents in parts: a job can be larger than one frame and is read a part at a time.
                    try db.execute(sql: """
                        ALTER TABLE job ADD COLUMN worker TEXT NOT NULL DEFAULT '';
                        CREATE TABLE job_part (job_id TEXT NOT NULL, seq INTEGER NOT NULL, documents BLOB NOT NULL, PRIMARY KEY (job_id, seq));
                        """)
                }
            }
            try queue.write { db in
                try db.execute(sql: """
                    UPDATE job SET state = 'queued',
                        errors = json_insert(errors, '$[#]', 'attempt ' || attempts || ': interrupted by a server stop')
                    WHERE state = 'running'
                    """)
            }
        } catch {
            throw RagError(.internal, "cannot open job store \(path): \(error)")
        }
    }

    /// On GRDB's queue, not the caller's thread: every write waits for an fsync,
    /// which must not hold one of the few cooperative threads.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(RagError) -> T {
        do { return try await queue.write(body) } catch let e as RagError { throw e } catch { throw RagError(.internal, "job store: \(error)") }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(RagError) -> T {
        do { return try await queue.read(body) } catch { throw RagError(.internal, "job store: \(error)") }
    }

    static var now: Double { Date().timeIntervalSince1970 }

    public func create(id: String, kind: String, spec: Data, part: Data?, total: Int, staging: Bool) async throws(RagError) {
        try await write { db in
            try db.execute(sql: "INSERT INTO job (id, kind, spec, state, created_at, next_run_at, progress_total) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           arguments: [id, kind, spec, staging ? "staging" : "queued", Self.now, Self.now, total])
            if let part { try db.execute(sql: "INSERT INTO job_part (job_id, seq, documents) VALUES (?, 0, ?)", arguments: [id, part]) }
        }
    }

    public func append(id: String, part: Data, count: Int, seal: Bool) async throws(RagError) {
        try await write { db in
            guard let state = try String.fetchOne(db, sql: "SELECT state FROM job WHERE id = ?", arguments: [id]) else {
                throw RagError.notFound("job \(id.debugDescription) does not exist")
            }
            guard state == "staging" else { throw RagError.failedPrecondition("job \(id) is \(state), not staging: it takes no more documents") }
            let seq = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM job_part WHERE job_id = ?", arguments: [id]) ?? 0
            try db.execute(sql: "INSERT INTO job_part (job_id, seq, documents) VALUES (?, ?, ?)", arguments: [id, seq, part])
            try db.execute(sql: "UPDATE job SET progress_total = progress_total + ?, state = ?, next_run_at = ? WHERE id = ?",
                           arguments: [count, seal ? "queued" : "staging", Self.now, id])
        }
    }

    public func partCount(id: String) async throws(RagError) -> Int {
        try await read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM job_part WHERE job_id = ?", arguments: [id]) ?? 0 }
    }

    public func part(id: String, index: Int) async throws(RagError) -> Data {
        guard let d = try await read({ try Data.fetchOne($0, sql: "SELECT documents FROM job_part WHERE job_id = ? AND seq = ?", arguments: [id, index]) }) else {
            throw RagError(.dataLoss, "job \(id) has lost its part \(index)")
        }
        return d
    }

    public func claim(kind: String, worker: String) async throws(RagError) -> ClaimedJob? {
        let now = Self.now
        return try await write { db -> ClaimedJob? in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT id, spec, attempts FROM job WHERE state = 'queued' AND kind = ? AND next_run_at <= ? ORDER BY created_at LIMIT 1
                """, arguments: [kind, now]) else { return nil }
            let id: String = row["id"]
            try db.execute(sql: "UPDATE job SET state = 'running', started_at = ?, attempts = attempts + 1, worker = ? WHERE id = ?",
                           arguments: [now, worker, id])
            return ClaimedJob(id: id, spec: row["spec"], attempt: (row["attempts"] as Int) + 1)
        }
    }

    /// One process owns this file, so a claim is never lost; only cancellation matters.
    public func heartbeat(id: String, worker: String) async throws(RagError) -> ClaimStatus {
        try await read { try String.fetchOne($0, sql: "SELECT state FROM job WHERE id = ?", arguments: [id]) } == "cancelled" ? .cancelled : .owned
    }

    public func progress(id: String, worker: String, done: Int) async throws(RagError) -> ClaimStatus {
        try await write { db in
            try db.execute(sql: "UPDATE job SET progress_done = ? WHERE id = ? AND state = 'running' AND worker = ?", arguments: [done, id, worker])
            if db.changesCount > 0 { return .owned }
            return try String.fetchOne(db, sql: "SELECT state FROM job WHERE id = ?", arguments: [id]) == "cancelled" ? .cancelled : .lost
        }
    }

    public func finish(id: String, result: Data) async throws(RagError) {
        try await write { db in
            try db.execute(sql: "UPDATE job SET state = 'succeeded', result = ?, finished_at = ? WHERE id = ? AND state != 'cancelled'",
                           arguments: [result, Self.now, id])
            try db.execute(sql: "DELETE FROM job_part WHERE job_id = ?", arguments: [id])
        }
    }

    public func failAttempt(id: String, error: String, retryAfter backoff: Double?) async throws(RagError) {
        try await write { db in
            if let backoff {
                try db.execute(sql: """
                    UPDATE job SET state = 'queued', errors = json_insert(errors, '$[#]', ?), backoffs = json_insert(backoffs, '$[#]', ?),
                                   next_run_at = ? WHERE id = ? AND state != 'cancelled'
                    """, arguments: [error, backoff, Self.now + backoff, id])
            } else {
                try db.execute(sql: """
                    UPDATE job SET state = 'failed', errors = json_insert(errors, '$[#]', ?), finished_at = ? WHERE id = ? AND state != 'cancelled'
                    """, arguments: [error, Self.now, id])
                try db.execute(sql: "DELETE FROM job_part WHERE job_id = ?", arguments: [id])
            }
        }
    }

    public func handBack(id: String, note: String) async throws(RagError) {
        try await write { db in
            try db.execute(sql: "UPDATE job SET state = 'queued', errors = json_insert(errors, '$[#]', ?) WHERE id = ? AND state = 'running'",
                           arguments: [note, id])
        }
    }

    public func release(id: String) async {
        _ = try? await write { try $0.execute(sql: "DELETE FROM job_part WHERE job_id = ?", arguments: [id]) }
    }

    public func cancel(id: String) async throws(RagError) -> Bool {
        try await write { db in
            guard let state = try String.fetchOne(db, sql: "SELECT state FROM job WHERE id = ?", arguments: [id]),
                  ["staging", "queued", "running"].contains(state) else { return false }
            try db.execute(sql: "UPDATE job SET state = 'cancelled', finished_at = ? WHERE id = ?", arguments: [Self.now, id])
            // A running job's parts go when its worker lets go of it.
            if state != "running" { try db.execute(sql: "DELETE FROM job_part WHERE job_id = ?", arguments: [id]) }
            return true
        }
    }

    public func get(id: String) async throws(RagError) -> Ragd_V1_Job? {
        try await read { db in try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id]).map(Self.job) }
    }

    public func list(state: String) async throws(RagError) -> [Ragd_V1_Job] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM job WHERE ? = '' OR state = ? ORDER BY created_at", arguments: [state, state]).map(Self.job)
        }
    }

    public func waiting(kind: String) async throws(RagError) -> Int {
        try await read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM job WHERE state = 'queued' AND kind = ?", arguments: [kind]) ?? 0 }
    }

    public func purge(olderThan age: Double) async throws(RagError) -> Int {
        try await write { db in
            try db.execute(sql: """
                DELETE FROM job_part WHERE job_id IN (SELECT id FROM job WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < ?)
                """, arguments: [Self.now - age])
            try db.execute(sql: "DELETE FROM job WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < ?", arguments: [Self.now - age])
            return db.changesCount
        }
    }

    public func expireStaging(idleFor idle: Double) async throws(RagError) -> [String] {
        try await write { db in
            // next_run_at is the time of the last part while a job is staging.
            let ids = try String.fetchAll(db, sql: "SELECT id FROM job WHERE state = 'staging' AND next_run_at < ?", arguments: [Self.now - idle])
            for id in ids {
                try db.execute(sql: "DELETE FROM job_part WHERE job_id = ?", arguments: [id])
                try db.execute(sql: """
                    UPDATE job SET state = 'failed', finished_at = ?, errors = json_insert(errors, '$[#]', ?) WHERE id = ?
                    """, arguments: [Self.now, Self.stagingExpiredMessage(idle), id])
            }
            return ids
        }
    }

    static func job(_ row: Row) -> Ragd_V1_Job {
        Ragd_V1_Job.with {
            $0.id = row["id"]
            $0.kind = row["kind"]
            $0.state = row["state"]
            $0.attempts = UInt32(row["attempts"] as Int)
            $0.errors = JobJSON.strings(row["errors"])
            $0.backoffSeconds = JobJSON.doubles(row["backoffs"])
            $0.createdAt = row["created_at"]
            $0.startedAt = row["started_at"]
            $0.finishedAt = row["finished_at"]
            $0.progressDone = UInt64(row["progress_done"] as Int)
            $0.progressTotal = UInt64(row["progress_total"] as Int)
            $0.result = (row["result"] as Data?) ?? Data()
            $0.worker = row["worker"]
            $0.backend = "sqlite"
            $0.owner = JobSpecOwner.of(row["spec"])
        }
    }
}

/// The JSON arrays of errors and backoffs a job row keeps.
private enum JobJSON {
    static func strings(_ s: String) -> [String] { (try? JSONDecoder().decode([String].self, from: Data(s.utf8))) ?? [] }
    static func doubles(_ s: String) -> [Double] { (try? JSONDecoder().decode([Double].self, from: Data(s.utf8))) ?? [] }
}
