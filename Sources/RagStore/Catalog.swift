import Foundation
import GRDB
import RagCore

/// What a collection was built with. Fixed at creation: partition count and
/// embedder decide where documents live and what their vectors mean.
public struct CollectionInfo: Sendable, Hashable, Codable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "collection"
    public var name: String
    public var embedder: String
    public var dimension: Int
    public var partitions: Int
    public var createdAt: Double
    /// Bumped by every write; part of cache keys so no answer outlives a write.
    public var generation: Int64

    public init(name: String, embedder: String, dimension: Int, partitions: Int, createdAt: Double = Date().timeIntervalSince1970, generation: Int64 = 0) {
        self.name = name
        self.embedder = embedder
        self.dimension = dimension
        self.partitions = partitions
        self.createdAt = createdAt
        self.generation = generation
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

    public func bumpGeneration(_ name: String) throws(RagError) {
        do { try queue.write { try $0.execute(sql: "UPDATE collection SET generation = generation + 1 WHERE name = ?", arguments: [name]) } }
        catch { throw RagError(.internal, "\(error)") }
    }

    public func remove(_ name: String) throws(RagError) {
        do { try queue.write { try $0.execute(sql: "DELETE FROM collection WHERE name = ?", arguments: [name]) } }
        catch { throw RagError(.internal, "\(error)") }
    }
}
