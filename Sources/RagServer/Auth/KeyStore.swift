import Foundation
import GRDB
import RagCore
import RagStore

/// Where API keys are kept: `keys.sqlite` on one server (`KeyStore`), or etcd
/// for coordinators that share a cluster (`EtcdKeyStore`). Only hashes of
/// secrets are stored; a token is shown once, when its key is made.
public protocol APIKeyStore: Sendable {
    /// True when other servers change it too (the authorizer then re-reads it).
    var isShared: Bool { get }
    func all() async throws(RagError) -> [APIKeyRecord]
    /// Stores a new record; false when its id is taken.
    func insert(_ record: APIKeyRecord) async throws(RagError) -> Bool
    func revoke(id: String) async throws(RagError) -> APIKeyRecord
    /// Lets go of files or connections (at shutdown).
    func close() async
}

extension APIKeyStore {
    public func close() async {}

    /// Creates a key; the returned token is the only copy of its secret.
    public func create(name: String, role: KeyRole, collections: [String] = [], queriesPerSecond: Double = 0,
                       documentsPerSecond: Double = 0) async throws(RagError) -> (APIKeyRecord, APIKeyToken) {
        for _ in 0..<8 {
            let (record, token) = try APIKeyRecord.make(name: name, role: role, collections: collections,
                                                        queriesPerSecond: queriesPerSecond, documentsPerSecond: documentsPerSecond)
            if try await insert(record) { return (record, token) }
        }
        throw .internal("could not pick an unused key id")
    }
}

/// API keys on disk: `keys.sqlite` in the data directory.
public final class KeyStore: APIKeyStore {
    let queue: DatabaseQueue

    public init(path: String) throws(RagError) {
        do {
            queue = try SQLiteFile.openQueue(path: path, synchronous: .full) { m in
                m.registerMigration("v1") { db in
                    try db.execute(sql: """
                        CREATE TABLE api_key (id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, collections TEXT NOT NULL,
                                              created_at REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,
                                              queries_per_second REAL NOT NULL DEFAULT 0, documents_per_second REAL NOT NULL DEFAULT 0,
                                              secret_sha256 BLOB NOT NULL)
                        """)
                }
            }
        } catch {
            throw RagError(.internal, "cannot open key store \(path): \(error)")
        }
    }

    public var isShared: Bool { false }

    public func close() async { try? queue.close() }

    /// Stores a new record unless its id is taken.
    public func insert(_ record: APIKeyRecord) throws(RagError) -> Bool {
        try write { db -> Bool in
            guard try Int.fetchOne(db, sql: "SELECT 1 FROM api_key WHERE id = ?", arguments: [record.id]) == nil else { return false }
            try db.execute(sql: """
                INSERT INTO api_key (id, name, role, collections, created_at, queries_per_second, documents_per_second, secret_sha256)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [record.id, record.name, record.role.rawValue, record.collections.joined(separator: "\n"), record.createdAt,
                                 record.queriesPerSecond, record.documentsPerSecond, record.secretHash])
            return true
        }
    }

    /// Creates a key (for `ragd keys create`, which runs without a server).
    public func create(name: String, role: KeyRole, collections: [String] = [], queriesPerSecond: Double = 0,
                       documentsPerSecond: Double = 0) throws(RagError) -> (APIKeyRecord, APIKeyToken) {
        for _ in 0..<8 {
            let (record, token) = try APIKeyRecord.make(name: name, role: role, collections: collections,
                                                        queriesPerSecond: queriesPerSecond, documentsPerSecond: documentsPerSecond)
            if try insert(record) { return (record, token) }
        }
        throw .internal("could not pick an unused key id")
    }

    public func all() throws(RagError) -> [APIKeyRecord] {
        do {
            return try queue.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM api_key ORDER BY created_at").map { row in
                    let collections: String = row["collections"]
                    return APIKeyRecord(id: row["id"], name: row["name"], role: KeyRole(rawValue: row["role"]) ?? .read,
                                        collections: collections.isEmpty ? [] : collections.components(separatedBy: "\n"),
                                        createdAt: row["created_at"], revoked: (row["revoked"] as Int) != 0,
                                        queriesPerSecond: row["queries_per_second"], documentsPerSecond: row["documents_per_second"],
                                        secretHash: row["secret_sha256"])
                }
            }
        } catch {
            throw RagError(.internal, "key store: \(error)")
        }
    }

    /// Revokes a key for good; NOT_FOUND for an unknown id.
    @discardableResult
    public func revoke(id: String) throws(RagError) -> APIKeyRecord {
        let changed = try write { db -> Int in
            try db.execute(sql: "UPDATE api_key SET revoked = 1 WHERE id = ?", arguments: [id])
            return db.changesCount
        }
        guard changed > 0, let record = try all().first(where: { $0.id == id }) else {
            throw .notFound("no key with id \(id.truncatedUTF8(maxBytes: 64).debugDescription)")
        }
        return record
    }

    func write<T>(_ body: (Database) throws -> T) throws(RagError) -> T {
        do { return try queue.write(body) } catch let e as RagError { throw e } catch { throw RagError(.internal, "key store: \(error)") }
    }
}
