import RagCore
import RagStore

/// Where a registry keeps its collections: `catalog.sqlite` on one server, or
/// etcd for coordinators that share a cluster (`EtcdCatalog`).
public protocol CollectionCatalog: Sendable {
    /// True when other processes create collections in it too: a name missing
    /// locally is then looked up here before it is NOT_FOUND.
    var isShared: Bool { get }
    func all() async throws(RagError) -> [CollectionInfo]
    func find(_ name: String) async throws(RagError) -> CollectionInfo?
    /// Creates `info` unless the name exists; returns what is stored (the first
    /// creator's entry, when two race).
    func create(_ info: CollectionInfo) async throws(RagError) -> CollectionInfo
    func bumpGeneration(_ name: String) async throws(RagError)
    /// Records (nil: clears) the storage a reindex builds for a collection.
    func setBuilding(_ name: String, _ build: StorageBuild?) async throws(RagError)
    /// Points a collection at the storage a reindex built, in one update.
    func switchStorage(_ name: String, to build: StorageBuild) async throws(RagError)
    /// Lets go of files or connections (at shutdown).
    func close() async
}

extension Catalog: CollectionCatalog {
    public var isShared: Bool { false }
    public func find(_ name: String) async throws(RagError) -> CollectionInfo? { nil }
    public func create(_ info: CollectionInfo) async throws(RagError) -> CollectionInfo {
        try insert(info)
        return info
    }
}
