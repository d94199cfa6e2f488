import Foundation
import GRDB
import RagCore
import RagStore

/// Experiments and what they recorded: `experiments.sqlite` in the data directory.
public final class ExperimentStore: Sendable {
    let queue: DatabaseQueue

    func close() { try? queue.close() }

    public struct Record: Sendable {
        public var queryID: String
        public var experiment: String
        public var variant: String
        public var userID: String
        public var totalSeconds: Double
        public var searchSeconds: Double
        public var results: Int
        public var cacheHit: Bool
    }

    public init(path: String) throws(RagError) {
        do {
            queue = try SQLiteFile.openQueue(path: path, synchronous: .normal) { m in
                m.registerMigration("v1") { db in
                    try db.execute(sql: """
                        CREATE TABLE experiment (name TEXT PRIMARY KEY, collection TEXT NOT NULL, definition BLOB NOT NULL,
                                                 state TEXT NOT NULL, created_at REAL NOT NULL);
                        CREATE TABLE record (query_id TEXT PRIMARY KEY, experiment TEXT NOT NULL, variant TEXT NOT NULL, user_id TEXT NOT NULL,
                                             total_seconds REAL NOT NULL, search_seconds REAL NOT NULL, results INTEGER NOT NULL,
                                             cache_hit INTEGER NOT NULL, created_at REAL NOT NULL);
                        CREATE INDEX record_experiment ON record(experiment, variant);
                        CREATE TABLE feedback (query_id TEXT PRIMARY KEY, thumbs_up INTEGER, relevance REAL, created_at REAL NOT NULL);
                        """)
                }
            }
        } catch {
            throw RagError(.internal, "cannot open experiment store \(path): \(error)")
        }
    }

    func wrap<T>(_ body: () throws -> T) throws(RagError) -> T {
        do { return try body() } catch { throw RagError(.internal, "experiment store: \(error)") }
    }

    public func insert(name: String, collection: String, definition: Data, createdAt: Double) throws(RagError) {
        try wrap {
            try queue.write { db in
                try db.execute(sql: "INSERT INTO experiment (name, collection, definition, state, created_at) VALUES (?, ?, ?, 'running', ?)",
                               arguments: [name, collection, definition, createdAt])
            }
        }
    }

    public func setState(_ name: String, _ state: String) throws(RagError) {
        try wrap { try queue.write { try $0.execute(sql: "UPDATE experiment SET state = ? WHERE name = ?", arguments: [state, name]) } }
    }

    public func all() throws(RagError) -> [(definition: Data, state: String, createdAt: Double)] {
        try wrap {
            try queue.read { db in
                try Row.fetchAll(db, sql: "SELECT definition, state, created_at FROM experiment ORDER BY created_at, name").map {
                    ($0["definition"], $0["state"], $0["created_at"])
                }
            }
        }
    }

    public func record(_ r: Record) throws(RagError) {
        try wrap {
            try queue.write { db in
                try db.execute(sql: """
                    INSERT OR REPLACE INTO record (query_id, experiment, variant, user_id, total_seconds, search_seconds, results, cache_hit, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [r.queryID, r.experiment, r.variant, r.userID, r.totalSeconds, r.searchSeconds, r.results,
                                     r.cacheHit, Date().timeIntervalSince1970])
            }
        }
    }

    /// The experiment and variant a query was served under, if any.
    public func lookup(queryID: String) throws(RagError) -> (experiment: String, variant: String)? {
        try wrap {
            try queue.read { db in
                try Row.fetchOne(db, sql: "SELECT experiment, variant FROM record WHERE query_id = ?", arguments: [queryID]).map { ($0["experiment"], $0["variant"]) }
            }
        }
    }

    public func feedback(queryID: String, thumbsUp: Bool?, relevance: Double?) throws(RagError) {
        try wrap {
            try queue.write { db in
                // Thumbs and relevance are kept side by side; a repeat of one replaces only that one.
                try db.execute(sql: """
                    INSERT INTO feedback (query_id, thumbs_up, relevance, created_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT(query_id) DO UPDATE SET thumbs_up = COALESCE(excluded.thumbs_up, thumbs_up),
                      relevance = COALESCE(excluded.relevance, relevance), created_at = excluded.created_at
                    """, arguments: [queryID, thumbsUp, relevance, Date().timeIntervalSince1970])
            }
        }
    }

    public struct VariantData: Sendable {
        public var total: [Double] = []
        public var search: [Double] = []
        public var results: [Double] = []
        public var cacheHits = 0
        public var relevance: [Double] = []
        public var thumbsUp = 0
        public var thumbsTotal = 0
    }

    /// Everything recorded for one experiment, by variant.
    public func data(_ experiment: String) throws(RagError) -> [String: VariantData] {
        try wrap {
            try queue.read { db in
                var out: [String: VariantData] = [:]
                let rows = try Row.fetchCursor(db, sql: """
                    SELECT r.variant, r.total_seconds, r.search_seconds, r.results, r.cache_hit, f.thumbs_up, f.relevance
                    FROM record r LEFT JOIN feedback f ON f.query_id = r.query_id WHERE r.experiment = ?
                    """, arguments: [experiment])
                while let row = try rows.next() {
                    var d = out[row["variant"], default: VariantData()]
                    d.total.append(row["total_seconds"])
                    d.search.append(row["search_seconds"])
                    d.results.append(Double(row["results"] as Int))
                    if row["cache_hit"] as Bool { d.cacheHits += 1 }
                    if let up = row["thumbs_up"] as Bool? { d.thumbsTotal += 1; if up { d.thumbsUp += 1 } }
                    if let rel = row["relevance"] as Double? { d.relevance.append(rel) }
                    out[row["variant"]] = d
                }
                return out
            }
        }
    }
}
