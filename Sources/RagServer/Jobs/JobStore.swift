import Foundation
import GRDB
import RagCore
import RagStore
import RagWire

/// The durable job queue: `jobs.sqlite` in the data directory. A job survives a
/// restart; one found `running` at start was interrupted and is queued again.
public final class JobStore: Sendable {
    let queue: DatabaseQueue

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
            }
            // Interrupted by a stop or a crash: run again (index jobs are idempotent).
            try queue.write { try $0.execute(sql: "UPDATE job SET state = 'queued' WHERE state = 'running'") }
        } catch {
            throw RagError(.internal, "cannot open job store \(path): \(error)")
        }
    }

    func wrap<T>(_ body: () throws -> T) throws(RagError) -> T {
        do { return try body() } catch { throw RagError(.internal, "job store: \(error)") }
    }

    public func insert(id: String, kind: String, spec: Data, total: Int) throws(RagError) {
        let now = Date().timeIntervalSince1970
        try wrap {
            try queue.write { db in
                try db.execute(sql: "INSERT INTO job (id, kind, spec, state, created_at, next_run_at, progress_total) VALUES (?, ?, ?, 'queued', ?, ?, ?)",
                               arguments: [id, kind, spec, now, now, total])
            }
        }
    }

    /// Takes the oldest ready job of `kind` and marks it running.
    public func claim(kind: String) throws(RagError) -> (id: String, spec: Data, attempts: Int)? {
        let now = Date().timeIntervalSince1970
        return try wrap {
            try queue.write { db -> (String, Data, Int)? in
                guard let row = try Row.fetchOne(db, sql: """
                    SELECT id, spec, attempts FROM job WHERE state = 'queued' AND kind = ? AND next_run_at <= ? ORDER BY created_at LIMIT 1
                    """, arguments: [kind, now]) else { return nil }
                let id: String = row["id"]
                try db.execute(sql: "UPDATE job SET state = 'running', started_at = ?, attempts = attempts + 1 WHERE id = ?", arguments: [now, id])
                return (id, row["spec"], (row["attempts"] as Int) + 1)
            }
        }
    }

    public func progress(_ id: String, done: Int) throws(RagError) {
        try wrap { try queue.write { try $0.execute(sql: "UPDATE job SET progress_done = ? WHERE id = ?", arguments: [done, id]) } }
    }

    public func finish(_ id: String, state: String, result: Data?) throws(RagError) {
        try wrap {
            try queue.write { db in
                try db.execute(sql: "UPDATE job SET state = ?, result = ?, finished_at = ? WHERE id = ? AND state != 'cancelled'",
                               arguments: [state, result, Date().timeIntervalSince1970, id])
            }
        }
    }

    /// Records a failed attempt; queues a retry after `backoff`, or fails the job.
    public func failAttempt(_ id: String, error: String, retryAfter backoff: Double?) throws(RagError) {
        try wrap {
            try queue.write { db in
                guard let row = try Row.fetchOne(db, sql: "SELECT errors, backoffs FROM job WHERE id = ?", arguments: [id]) else { return }
                var errors = (try? JSONDecoder().decode([String].self, from: Data((row["errors"] as String).utf8))) ?? []
                var backoffs = (try? JSONDecoder().decode([Double].self, from: Data((row["backoffs"] as String).utf8))) ?? []
                errors.append(error)
                if let backoff { backoffs.append(backoff) }
                let e = String(decoding: try JSONEncoder().encode(errors), as: UTF8.self)
                let b = String(decoding: try JSONEncoder().encode(backoffs), as: UTF8.self)
                let now = Date().timeIntervalSince1970
                if let backoff {
                    try db.execute(sql: "UPDATE job SET state = 'queued', errors = ?, backoffs = ?, next_run_at = ? WHERE id = ? AND state != 'cancelled'",
                                   arguments: [e, b, now + backoff, id])
                } else {
                    try db.execute(sql: "UPDATE job SET state = 'failed', errors = ?, backoffs = ?, finished_at = ? WHERE id = ? AND state != 'cancelled'",
                                   arguments: [e, b, now, id])
                }
            }
        }
    }

    /// Cancels a job that has not finished; returns false when it already had.
    public func cancel(_ id: String) throws(RagError) -> Bool {
        try wrap {
            try queue.write { db in
                try db.execute(sql: "UPDATE job SET state = 'cancelled', finished_at = ? WHERE id = ? AND state IN ('queued', 'running')",
                               arguments: [Date().timeIntervalSince1970, id])
                return db.changesCount > 0
            }
        }
    }

    public func get(_ id: String) throws(RagError) -> Ragd_V1_Job? {
        try wrap { try queue.read { db in try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id]).map(Self.job) } }
    }

    public func list(state: String) throws(RagError) -> [Ragd_V1_Job] {
        try wrap {
            try queue.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM job WHERE ? = '' OR state = ? ORDER BY created_at", arguments: [state, state]).map(Self.job)
            }
        }
    }

    static func job(_ row: Row) -> Ragd_V1_Job {
        Ragd_V1_Job.with {
            $0.id = row["id"]
            $0.kind = row["kind"]
            $0.state = row["state"]
            $0.attempts = UInt32(row["attempts"] as Int)
            $0.errors = (try? JSONDecoder().decode([String].self, from: Data((row["errors"] as String).utf8))) ?? []
            $0.backoffSeconds = (try? JSONDecoder().decode([Double].self, from: Data((row["backoffs"] as String).utf8))) ?? []
            $0.createdAt = row["created_at"]
            $0.startedAt = row["started_at"]
            $0.finishedAt = row["finished_at"]
            $0.progressDone = UInt64(row["progress_done"] as Int)
            $0.progressTotal = UInt64(row["progress_total"] as Int)
            $0.result = (row["result"] as Data?) ?? Data()
        }
    }
}
