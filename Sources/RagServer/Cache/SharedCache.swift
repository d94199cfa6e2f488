import Foundation
import GRDB
import RagCore

/// The second cache level: shared by processes (Redis) or surviving restarts
/// (SQLite). Implementations must be quick to fail: a slow or broken L2 is a
/// miss, never a failed query.
public protocol SharedCache: Sendable {
    var name: String { get }
    func get(_ key: String) async throws -> Data?
    func set(_ key: String, _ value: Data, ttl: Duration) async throws
    /// Removes every entry.
    func clear() async throws
    /// A counter shared by every server using this cache, bumped on each write to
    /// the collection; part of cache keys so no coordinator serves a stale answer.
    func generation(_ collection: String) async throws -> Int64
    func bumpGeneration(_ collection: String) async throws
    /// Lets go of files or connections (at shutdown).
    func close() async
}

extension SharedCache {
    public func close() async {}
}

/// SQLite L2: `cache.sqlite` beside the data. Survives restarts; one server.
public final class SQLiteSharedCache: SharedCache {
    public var name: String { "sqlite" }
    let pool: DatabasePool

    public func close() async { try? pool.close() }

    public init(path: String) throws(RagError) {
        do {
            var config = Configuration()
            // A cache may lose its last writes on power loss; it must not slow queries.
            config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            pool = try DatabasePool(path: path, configuration: config)
            var m = DatabaseMigrator()
            m.registerMigration("v1") { db in
                try db.execute(sql: "CREATE TABLE entry (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL NOT NULL)")
                try db.execute(sql: "CREATE INDEX entry_expires ON entry(expires)")
            }
            try m.migrate(pool)
        } catch {
            throw RagError(.internal, "cannot open cache \(path): \(error)")
        }
    }

    public func get(_ key: String) async throws -> Data? {
        let now = Date().timeIntervalSince1970
        return try await pool.read { db in
            try Data.fetchOne(db, sql: "SELECT value FROM entry WHERE key = ? AND expires > ?", arguments: [key, now])
        }
    }

    public func set(_ key: String, _ value: Data, ttl: Duration) async throws {
        let expires = Date().timeIntervalSince1970 + ttl.inSeconds
        try await pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO entry (key, value, expires) VALUES (?, ?, ?)", arguments: [key, value, expires])
        }
    }

    public func clear() async throws {
        try await pool.write { try $0.execute(sql: "DELETE FROM entry") }
    }

    /// Drops expired rows (called by the janitor).
    public func purgeExpired() async throws -> Int {
        let now = Date().timeIntervalSince1970
        return try await pool.write { db in
            try db.execute(sql: "DELETE FROM entry WHERE expires <= ?", arguments: [now])
            return db.changesCount
        }
    }

    /// One process owns this file, so the catalog's generation is enough.
    public func generation(_ collection: String) async throws -> Int64 { 0 }
    public func bumpGeneration(_ collection: String) async throws {}
}
