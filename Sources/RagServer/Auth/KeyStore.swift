import Foundation
import GRDB
import RagCore
import RagStore

/// API keys on disk: `keys.sqlite` in the data directory. Holds only hashes
/// of secrets; the token is shown once, by `create`.
public final class KeyStore: Sendable {
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

    /// Names are for people; they are bounded like every other string a client sends.
    static func validate(name: String, collections: [String], queriesPerSecond: Double, documentsPerSecond: Double) throws(RagError) {
        guard name.utf8.count <= 256 else { throw .invalidArgument("a key's name is at most 256 bytes") }
        guard collections.count <= 1000 else { throw .invalidArgument("a key names at most 1000 collections") }
        for c in collections { try CollectionRegistry.validateName(c) }
        for r in [queriesPerSecond, documentsPerSecond] where !(r.isFinite && r >= 0) {
            throw .invalidArgument("rate limits are finite and not negative (0: unlimited)")
        }
    }

    /// Creates a key; the returned token is the only copy of its secret.
    public func create(name: String, role: KeyRole, collections: [String] = [], queriesPerSecond: Double = 0,
                       documentsPerSecond: Double = 0) throws(RagError) -> (APIKeyRecord, APIKeyToken) {
        try Self.validate(name: name, collections: collections, queriesPerSecond: queriesPerSecond, documentsPerSecond: documentsPerSecond)
        for _ in 0..<8 {
            let token = APIKeyToken.generate()
            let record = APIKeyRecord(id: token.id, name: name, role: role, collections: Array(Set(collections)).sorted(),
                                      createdAt: Date().timeIntervalSince1970, revoked: false, queriesPerSecond: queriesPerSecond,
                                      documentsPerSecond: documentsPerSecond, secretHash: token.secretHash)
            let inserted = try write { db -> Bool in
                guard try Int.fetchOne(db, sql: "SELECT 1 FROM api_key WHERE id = ?", arguments: [record.id]) == nil else { return false }
                try db.execute(sql: """
                    INSERT INTO api_key (id, name, role, collections, created_at, queries_per_second, documents_per_second, secret_sha256)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [record.id, name, role.rawValue, record.collections.joined(separator: "\n"), record.createdAt,
                                     queriesPerSecond, documentsPerSecond, record.secretHash])
                return true
            }
            if inserted { return (record, token) }
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
