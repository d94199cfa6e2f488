import Foundation
import GRDB
import RagCore
import RagEngine
import Synchronization

/// Durable storage of one partition: one SQLite file in WAL mode.
///
/// `synchronous=FULL`: every commit is fsynced before `write` returns, so an
/// acknowledged `Index` survives `kill -9` *and* power loss. (WAL + NORMAL would
/// survive a process crash but may lose the last commits on power loss.) Index
/// calls commit a whole batch per transaction, so the fsync cost is per batch.
public final class PartitionStore: Sendable {
    public let path: String
    let pool: DatabasePool
    /// The generation of the last commit (`PartitionStore+Journal`).
    let committed = Mutex<Generation>(Generation(lineage: 0, number: 0, floor: 0))
    /// Chunk texts for query answers, outside GRDB's pool (see `ChunkTextReader`).
    let textReader: ChunkTextReader

    public enum Synchronous: String, Sendable { case normal = "NORMAL", full = "FULL" }

    public init(path: String, synchronous: Synchronous = .full) throws(RagError) {
        self.path = path
        textReader = ChunkTextReader(path: path)
        var config = Configuration()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous.rawValue)")
        }
        config.busyMode = .timeout(5)
        do {
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            pool = try DatabasePool(path: path, configuration: config)
            try Self.migrator.migrate(pool)
            try committed.withLock { $0 = try pool.read(Self.generation) }
        } catch {
            throw RagError(.internal, "cannot open partition database \(path): \(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.create(table: "document") { t in
                t.primaryKey("id", .text)
                t.column("contentHash", .integer).notNull()
                t.column("metadata", .text).notNull()
                t.column("chunkCount", .integer).notNull()
                t.column("updatedAt", .double).notNull()
            }
            try db.create(table: "chunk") { t in
                t.column("documentId", .text).notNull().references("document", onDelete: .cascade)
                t.column("ordinal", .integer).notNull()
                t.column("text", .text).notNull()
                t.column("embedding", .blob).notNull()
                t.primaryKey(["documentId", "ordinal"])
            }
        }
        m.registerMigration("v2-oplog") { db in
            // The replication log: every sequenced write, kept for peers to catch up from.
            try db.execute(sql: "CREATE TABLE oplog (seq INTEGER PRIMARY KEY, version INTEGER NOT NULL, payload BLOB NOT NULL)")
            // The last entry applied (also when the log was truncated or a copy set it).
            try db.execute(sql: "CREATE TABLE applied (id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL, version INTEGER NOT NULL)")
            try db.execute(sql: "INSERT INTO applied (id, seq, version) VALUES (0, 0, 0)")
        }
        m.registerMigration("v3-source") { db in
            // Each document's original text, deflated (SourceText); NULL: not kept.
            try db.execute(sql: "ALTER TABLE document ADD COLUMN source BLOB")
        }
        m.registerMigration("v4-journal") { db in
            // What a saved index image is checked against (`PartitionStore+Journal`).
            try db.execute(sql: """
                CREATE TABLE generation (id INTEGER PRIMARY KEY CHECK (id = 0), lineage INTEGER NOT NULL,
                  n INTEGER NOT NULL, floor INTEGER NOT NULL)
                """)
            try db.execute(sql: "INSERT INTO generation (id, lineage, n, floor) VALUES (0, random(), 0, 0)")
            try db.execute(sql: "CREATE TABLE journal (generation INTEGER NOT NULL, documentId TEXT NOT NULL)")
            try db.execute(sql: "CREATE INDEX journal_generation ON journal (generation)")
        }
        return m
    }

    /// Applies upserts and deletes in one transaction: either all are durable
    /// when this returns, or none. Returns the ids of `deletes` that existed.
    /// `entry`: the write is that replication log entry; it is logged and
    /// recorded as the last applied in the same transaction, and the log is
    /// cut to `keep` now and then.
    @discardableResult
    public func write(upserts: [PreparedDocument], deletes: [String] = [], entry: LogEntry? = nil, keep: LogRetention = .none) throws(RagError) -> Set<String> {
        do {
            var next: UInt64 = 0
            let deleted = try pool.write { db in
                next = try journal(db, ids: deletes + upserts.map(\.id))
                if let entry {
                    try db.execute(sql: "INSERT OR REPLACE INTO oplog (seq, version, payload) VALUES (?, ?, ?)",
                                   arguments: [Int64(entry.seq), Int64(entry.version), entry.payload])
                    try db.execute(sql: "UPDATE applied SET seq = ?, version = ? WHERE id = 0", arguments: [Int64(entry.seq), Int64(entry.version)])
                    if keep.entries > 0, entry.seq % UInt64(min(64, keep.entries)) == 0 {
                        try db.execute(sql: "DELETE FROM oplog WHERE seq <= ?", arguments: [Int64(entry.seq) - Int64(keep.entries)])
                        // The newest entries that fit `bytes` stay (at least the newest one).
                        try db.execute(sql: """
                            DELETE FROM oplog WHERE seq < (SELECT COALESCE(MIN(seq), 0) FROM
                              (SELECT seq, SUM(LENGTH(payload)) OVER (ORDER BY seq DESC) AS total FROM oplog) WHERE total <= ?)
                            """, arguments: [max(keep.bytes, 1)])
                    }
                }
                var deleted = Set<String>()
                for id in deletes {
                    try db.execute(sql: "DELETE FROM chunk WHERE documentId = ?", arguments: [id])
                    try db.execute(sql: "DELETE FROM document WHERE id = ?", arguments: [id])
                    if db.changesCount > 0 { deleted.insert(id) }
                }
                let now = Date().timeIntervalSince1970
                let encoder = JSONEncoder()
                encoder.outputFormatting = .sortedKeys
                for doc in upserts {
                    try db.execute(sql: "DELETE FROM chunk WHERE documentId = ?", arguments: [doc.id])
                    let meta = String(decoding: try encoder.encode(doc.metadata), as: UTF8.self)
                    try db.execute(
                        sql: """
                        INSERT INTO document (id, contentHash, metadata, chunkCount, updatedAt, source) VALUES (?, ?, ?, ?, ?, ?)
                        ON CONFLICT(id) DO UPDATE SET contentHash = excluded.contentHash, metadata = excluded.metadata,
                          chunkCount = excluded.chunkCount, updatedAt = excluded.updatedAt, source = excluded.source
                        """,
                        arguments: [doc.id, Int64(bitPattern: doc.contentHash), meta, doc.chunks.count, now, doc.source.isEmpty ? nil : doc.source])
                    let insert = try db.cachedStatement(sql: "INSERT INTO chunk (documentId, ordinal, text, embedding) VALUES (?, ?, ?, ?)")
                    for (i, (text, vector)) in zip(doc.chunks, doc.embeddings).enumerated() {
                        try insert.execute(arguments: [doc.id, i, text, Self.blob(vector)])
                    }
                }
                return deleted
            }
            // Only once committed: an image saved at this generation must hold this write.
            committed.withLock { $0.number = next }
            return deleted
        } catch {
            throw RagError(.internal, "write to \(path) failed: \(error)")
        }
    }

    /// Streams every stored document with its chunks, in id order.
    public func loadAll(_ body: (PreparedDocument) throws -> Void) throws(RagError) {
        do {
            try pool.read { db in
                let decoder = JSONDecoder()
                var current: PreparedDocument?
                let docs = try Row.fetchCursor(db, sql: "SELECT id, contentHash, metadata FROM document ORDER BY id")
                var meta: [String: (UInt64, Metadata)] = [:]
                while let row = try docs.next() {
                    let m = try Self.metadata(row, decoder)
                    meta[row["id"]] = (UInt64(bitPattern: row["contentHash"]), m)
                }
                let chunks = try Row.fetchCursor(db, sql: "SELECT documentId, ordinal, text, embedding FROM chunk ORDER BY documentId, ordinal")
                while let row = try chunks.next() {
                    let id: String = row["documentId"]
                    if current?.id != id {
                        if let c = current { try body(c) }
                        let (hash, m) = meta[id] ?? (0, [:])
                        current = PreparedDocument(id: id, metadata: m, contentHash: hash, chunks: [], embeddings: [])
                    }
                    current!.chunks.append(row["text"])
                    current!.embeddings.append(Self.floats(row["embedding"]))
                }
                if let c = current { try body(c) }
            }
        } catch let e as RagError {
            throw e
        } catch {
            throw RagError(.dataLoss, "cannot read \(path): \(error)")
        }
    }

    /// The chunk texts of these documents, in chunk order; absent ids are left out.
    public func chunkTexts(_ ids: [String]) throws(RagError) -> [String: [String]] {
        guard !ids.isEmpty else { return [:] }
        return try read { db in
            let select = try db.cachedStatement(sql: "SELECT text FROM chunk WHERE documentId = ? ORDER BY ordinal")
            var out: [String: [String]] = [:]
            for id in ids {
                let texts = try String.fetchAll(select, arguments: [id])
                if !texts.isEmpty { out[id] = texts }
            }
            return out
        }
    }

    /// The texts of these chunks, each only if its document still has that
    /// content hash (a chunk of a replaced or deleted document is left out).
    public func texts(_ chunks: [ChunkKey: UInt64]) throws(RagError) -> [ChunkKey: String] {
        guard !chunks.isEmpty else { return [:] }
        return try textReader.texts(chunks)
    }

    /// As `texts`, or nil without waiting while another caller reads this partition's texts.
    public func textsIfFree(_ chunks: [ChunkKey: UInt64]) throws(RagError) -> [ChunkKey: String]? {
        guard !chunks.isEmpty else { return [:] }
        return try textReader.textsIfFree(chunks)
    }

    /// These documents as stored (chunks, vectors, kept source), in the order
    /// asked; absent ids are left out.
    public func documents(_ ids: [String]) throws(RagError) -> [PreparedDocument] {
        guard !ids.isEmpty else { return [] }
        return try read { db in
            let decoder = JSONDecoder()
            let doc = try db.cachedStatement(sql: "SELECT contentHash, metadata, source FROM document WHERE id = ?")
            let chunks = try db.cachedStatement(sql: "SELECT text, embedding FROM chunk WHERE documentId = ? ORDER BY ordinal")
            var out: [PreparedDocument] = []
            for id in ids {
                guard let row = try Row.fetchOne(doc, arguments: [id]) else { continue }
                var d = PreparedDocument(id: id, metadata: try Self.metadata(row, decoder), contentHash: UInt64(bitPattern: row["contentHash"]), chunks: [], embeddings: [],
                                         source: row["source"] ?? Data())
                for c in try Row.fetchAll(chunks, arguments: [id]) {
                    d.chunks.append(c["text"])
                    d.embeddings.append(Self.floats(c["embedding"]))
                }
                out.append(d)
            }
            return out
        }
    }

    private func read<T>(_ body: (Database) throws -> T) throws(RagError) -> T {
        do { return try pool.read(body) } catch { throw RagError(.internal, "read of \(path) failed: \(error)") }
    }

    /// The kept source texts (deflated) of these documents; documents without one are left out.
    public func sources(_ ids: [String]) throws(RagError) -> [String: Data] {
        try read { db in
            // One statement, prepared once, for a page of ids.
            let select = try db.cachedStatement(sql: "SELECT source FROM document WHERE id = ? AND source IS NOT NULL")
            var out: [String: Data] = [:]
            for id in ids {
                if let d = try Data.fetchOne(select, arguments: [id]) { out[id] = d }
            }
            return out
        }
    }

    public func documentCount() throws(RagError) -> Int {
        try read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM document") ?? 0 }
    }

    public func chunkCount() throws(RagError) -> Int {
        try read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM chunk") ?? 0 }
    }

    public func close() throws {
        textReader.close()
        try pool.close()
    }

    /// A document row's metadata (stored as JSON).
    static func metadata(_ row: Row, _ decoder: JSONDecoder) throws -> Metadata {
        try decoder.decode(Metadata.self, from: Data((row["metadata"] as String).utf8))
    }

    static func blob(_ v: [Float]) -> Data {
        v.withUnsafeBytes { Data($0) }
    }

    static func floats(_ d: Data) -> [Float] {
        let n = d.count / MemoryLayout<Float>.size
        return [Float](unsafeUninitializedCapacity: n) { buf, count in
            _ = d.copyBytes(to: buf)
            count = n
        }
    }
}
