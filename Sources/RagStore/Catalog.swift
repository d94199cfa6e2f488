import Foundation
import GRDB
import RagCore

/// What a collection was built with. Partition count and embedder decide where
/// documents live and what their vectors mean; a reindex builds a new storage
/// with another embedder or chunking and switches the entry to it in one update.
public struct CollectionInfo: Sendable, Hashable, Codable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "collection"
    public var name: String
    public var embedder: String
    public var dimension: Int
    public var partitions: Int
    public var createdAt: Double
    /// Bumped by every write; part of cache keys so no answer outlives a write.
    public var generation: Int64
    /// Where the partitions live (`collections/<storage>/`): the name itself
    /// until a reindex switches the collection to a storage it built.
    public var storage: String
    /// The chunking a write that names none gets (0: the server's default).
    /// Set by a reindex with `--chunk-size`, so later writes chunk alike.
    public var chunkSize: Int
    public var chunkOverlap: Int
    /// What a running reindex builds (nil: none). Writes go to both while it is
    /// set, also after a restart, until the reindex switches or is abandoned.
    public var building: StorageBuild?
    /// The vector index its partitions build (`exact`, `int8`, `hnsw`, `auto`;
    /// "": the server's `--vector-index`). Named by the Index call that
    /// created the collection; a reindex can change it.
    public var index: String

    public init(name: String, embedder: String, dimension: Int, partitions: Int, createdAt: Double = Date().timeIntervalSince1970,
                generation: Int64 = 0, storage: String? = nil, chunkSize: Int = 0, chunkOverlap: Int = 0, building: StorageBuild? = nil,
                index: String = "") {
        self.name = name
        self.embedder = embedder
        self.dimension = dimension
        self.partitions = partitions
        self.createdAt = createdAt
        self.generation = generation
        self.storage = storage ?? name
        self.chunkSize = chunkSize
        self.chunkOverlap = chunkOverlap
        self.building = building
        self.index = index
    }

    enum CodingKeys: String, CodingKey {
        case name, embedder, dimension, partitions, createdAt, generation, storage, chunkSize, chunkOverlap, building
        case index = "vectorIndex"
    }

    /// Entries written before reindex existed (etcd JSON, old catalog rows) lack the new fields.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        embedder = try c.decode(String.self, forKey: .embedder)
        dimension = try c.decode(Int.self, forKey: .dimension)
        partitions = try c.decode(Int.self, forKey: .partitions)
        createdAt = try c.decode(Double.self, forKey: .createdAt)
        generation = try c.decode(Int64.self, forKey: .generation)
        storage = try c.decodeIfPresent(String.self, forKey: .storage) ?? name
        chunkSize = try c.decodeIfPresent(Int.self, forKey: .chunkSize) ?? 0
        chunkOverlap = try c.decodeIfPresent(Int.self, forKey: .chunkOverlap) ?? 0
        building = try c.decodeIfPresent(StorageBuild.self, forKey: .building)
        index = try c.decodeIfPresent(String.self, forKey: .index) ?? ""
    }
}

/// A storage being built for a collection by a reindex job.
public struct StorageBuild: Sendable, Hashable, Codable {
    /// Its directory name: `<collection>~r<n>`, which no collection name can be.
    public var storage: String
    public var embedder: String
    public var dimension: Int
    public var chunkSize: Int
    public var chunkOverlap: Int
    /// The job building it (a second reindex is refused while it runs).
    public var job: String
    /// The vector index it builds (see `CollectionInfo.index`).
    public var index: String

    public init(storage: String, embedder: String, dimension: Int, chunkSize: Int, chunkOverlap: Int, job: String, index: String = "") {
        self.storage = storage
        self.embedder = embedder
        self.dimension = dimension
        self.chunkSize = chunkSize
        self.chunkOverlap = chunkOverlap
        self.job = job
        self.index = index
    }

    enum CodingKeys: String, CodingKey { case storage, embedder, dimension, chunkSize, chunkOverlap, job, index }

    /// Builds recorded before collections named their index lack it.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        storage = try c.decode(String.self, forKey: .storage)
        embedder = try c.decode(String.self, forKey: .embedder)
        dimension = try c.decode(Int.self, forKey: .dimension)
        chunkSize = try c.decode(Int.self, forKey: .chunkSize)
        chunkOverlap = try c.decode(Int.self, forKey: .chunkOverlap)
        job = try c.decode(String.self, forKey: .job)
        index = try c.decodeIfPresent(String.self, forKey: .index) ?? ""
    }
}

/// The list of collections: `catalog.sqlite` in the data directory.
public final class Catalog: Sendable {
    let queue: DatabaseQueue

    public init(path: String) throws(RagError) {
        do {
            queue = try SQLiteFile.openQueue(path: path, synchronous: .full) { m in
                m.registerMigration("v1") { db in
                    try db.create(table: "collection") { t in
                        t.primaryKey("name", .text)
                        t.column("embedder", .text).notNull()
                        t.column("dimension", .integer).notNull()
                        t.column("partitions", .integer).notNull()
                        t.column("createdAt", .double).notNull()
                        t.column("generation", .integer).notNull()
                    }
                }
                m.registerMigration("v2-reindex") { db in
                    try db.alter(table: "collection") { t in
                        t.add(column: "storage", .text)
                        t.add(column: "chunkSize", .integer).notNull().defaults(to: 0)
                        t.add(column: "chunkOverlap", .integer).notNull().defaults(to: 0)
                        t.add(column: "building", .text)
                    }
                    try db.execute(sql: "UPDATE collection SET storage = name")
                }
                m.registerMigration("v3-index") { db in
                    try db.alter(table: "collection") { t in
                        t.add(column: "vectorIndex", .text).notNull().defaults(to: "")
                    }
                }
            }
        } catch {
            throw RagError(.internal, "cannot open catalog \(path): \(error)")
        }
    }

    /// Lets go of the file (at shutdown); later calls fail.
    public func close() {
        try? queue.close()
    }

    public func all() throws(RagError) -> [CollectionInfo] {
        do { return try queue.read { try CollectionInfo.order(Column("name")).fetchAll($0) } }
        catch { throw RagError(.internal, "\(error)") }
    }

    public func insert(_ info: CollectionInfo) throws(RagError) {
        do { try queue.write { try info.insert($0) } }
        catch { throw RagError(.internal, "cannot record collection \(info.name): \(error)") }
    }

    /// On GRDB's queue, not the caller's thread: every write (one per Index or
    /// Delete call) waits for an fsync.
    public func bumpGeneration(_ name: String) async throws(RagError) {
        do { try await queue.write { try $0.execute(sql: "UPDATE collection SET generation = generation + 1 WHERE name = ?", arguments: [name]) } }
        catch { throw RagError(.internal, "\(error)") }
    }

    /// Records (or, with nil, clears) the storage a reindex builds for `name`.
    public func setBuilding(_ name: String, _ build: StorageBuild?) throws(RagError) {
        do {
            let json = try build.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
            try queue.write { try $0.execute(sql: "UPDATE collection SET building = ? WHERE name = ?", arguments: [json, name]) }
        } catch { throw RagError(.internal, "\(error)") }
    }

    /// Points `name` at the storage a reindex built, in one transaction: the
    /// embedder and chunking it was built with, no build pending, and a new
    /// generation so no cached answer from the old storage is served.
    public func switchStorage(_ name: String, to built: StorageBuild) throws(RagError) {
        do {
            try queue.write {
                try $0.execute(sql: """
                    UPDATE collection SET storage = ?, embedder = ?, dimension = ?, chunkSize = ?, chunkOverlap = ?, vectorIndex = ?,
                    building = NULL, generation = generation + 1 WHERE name = ?
                    """, arguments: [built.storage, built.embedder, built.dimension, built.chunkSize, built.chunkOverlap, built.index, name])
            }
        } catch { throw RagError(.internal, "\(error)") }
    }

    public func remove(_ name: String) throws(RagError) {
        do { try queue.write { try $0.execute(sql: "DELETE FROM collection WHERE name = ?", arguments: [name]) } }
        catch { throw RagError(.internal, "\(error)") }
    }
}
