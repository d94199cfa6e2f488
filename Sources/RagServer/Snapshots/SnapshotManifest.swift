import Foundation
import RagCore
import RagStore

/// What a snapshot archive holds (`manifest.json`): the collection's settings
/// and, per partition file, its size, SHA-256 and what it contains.
public struct SnapshotManifest: Codable, Sendable, Hashable {
    public struct File: Codable, Sendable, Hashable {
        public var name: String
        public var partition: Int
        public var bytes: Int
        public var sha256: String
        public var documents: Int
        public var chunks: Int
        /// The replication log position the copy is at (0 on a single server).
        public var seq: UInt64
        /// The shard node the copy was read from (nil: a single server).
        public var replica: String?
    }

    public static let currentFormat = "ragd-snapshot-1"
    public var format = SnapshotManifest.currentFormat
    /// The archive's name on the server (set when it is stored).
    public var name = ""
    public var collection: String
    public var embedder: String
    public var dimension: Int
    public var partitions: Int
    public var chunkSize: Int
    public var chunkOverlap: Int
    public var createdAt: Double
    public var files: [File]
    /// The collection's vector index (nil in archives made before collections named one).
    public var index: String?
    /// Archive size (set when it is stored; not part of the archive's own manifest).
    public var bytes = 0

    public var documents: Int { files.map(\.documents).reduce(0, +) }
    public var chunks: Int { files.map(\.chunks).reduce(0, +) }

    /// A manifest read from an archive, checked against itself: one file per
    /// partition, sane settings. Anything else is DATA_LOSS.
    static func decode(_ data: Data) throws(RagError) -> SnapshotManifest {
        let m: SnapshotManifest
        do { m = try JSONDecoder().decode(SnapshotManifest.self, from: data) } catch {
            throw TarArchive.damaged("manifest.json is not a snapshot manifest")
        }
        guard m.format == currentFormat else { throw RagError(.failedPrecondition, "snapshot format \(m.format.truncatedUTF8(maxBytes: 40)) is not one this server reads") }
        guard (1...4096).contains(m.partitions), (1...8192).contains(m.dimension), m.files.count == m.partitions,
              m.files.map(\.partition).sorted() == Array(0..<m.partitions),
              m.files.allSatisfy({ $0.name == SnapshotManager.fileName($0.partition) && $0.sha256.count == 64 }),
              (try? CollectionRegistry.validateName(m.collection)) != nil
        else { throw TarArchive.damaged("manifest.json does not describe a collection's partitions") }
        return m
    }
}
