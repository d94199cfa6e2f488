import Foundation
import RagCore
import RagStore

/// The collection catalog of coordinators that share one cluster: in etcd, under
/// `/ragd/collections/<name>` (JSON), created with a compare-and-create
/// transaction so two coordinators creating the same collection agree on one.
public final class EtcdCatalog: CollectionCatalog {
    let etcd: EtcdClient
    static let prefix = "/ragd/collections/"

    public init(etcd: EtcdClient) {
        self.etcd = etcd
    }

    public var isShared: Bool { true }
    public func close() async {}

    public func all() async throws(RagError) -> [CollectionInfo] {
        try await etcd.list(prefix: Self.prefix).kvs.map { (kv) throws(RagError) in try Self.decode(kv.value) }
    }

    public func find(_ name: String) async throws(RagError) -> CollectionInfo? {
        try await etcd.get(Self.prefix + name).map { (kv) throws(RagError) in try Self.decode(kv.value) }
    }

    public func create(_ info: CollectionInfo) async throws(RagError) -> CollectionInfo {
        let data: Data
        do { data = try JSONEncoder().encode(info) } catch { throw RagError(.internal, "catalog entry: \(error)") }
        return try Self.decode(try await etcd.create(Self.prefix + info.name, data).0.value)
    }

    /// The generation lives with the cache generations (EtcdGenerations): the
    /// catalog entry itself never changes after creation.
    public func bumpGeneration(_ name: String) async throws(RagError) {}

    /// Coordinators that share a catalog cache each collection's entry, so a
    /// switch made by one would not reach the writes of another: reindex runs
    /// on single servers (`Reindexer` refuses it here before calling these).
    public func setBuilding(_ name: String, _ build: StorageBuild?) async throws(RagError) {
        throw Self.reindexUnsupported
    }

    public func switchStorage(_ name: String, to build: StorageBuild) async throws(RagError) {
        throw Self.reindexUnsupported
    }

    static let reindexUnsupported = RagError.failedPrecondition(
        "reindex is not available on coordinators that share an etcd catalog; index into a new collection instead")

    static func decode(_ data: Data) throws(RagError) -> CollectionInfo {
        do { return try JSONDecoder().decode(CollectionInfo.self, from: data) } catch {
            throw RagError(.dataLoss, "a catalog entry in etcd is not valid: \(error)")
        }
    }
}
