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

    static func decode(_ data: Data) throws(RagError) -> CollectionInfo {
        do { return try JSONDecoder().decode(CollectionInfo.self, from: data) } catch {
            throw RagError(.dataLoss, "a catalog entry in etcd is not valid: \(error)")
        }
    }
}

/// Write generations in etcd (`/ragd/generations/<name>`; the key's modification
/// revision is the generation), in front of any second-level cache: every
/// coordinator reads the generation per cached query and bumps it before a
/// write commits, so none serves an answer from before a write made through
/// another (the same protocol as the Redis generation, README "Cache").
public final class EtcdGenerations: SharedCache, GenerationAuthority {
    let etcd: EtcdClient
    let base: (any SharedCache)?
    static let prefix = "/ragd/generations/"

    public init(etcd: EtcdClient, base: (any SharedCache)?) {
        self.etcd = etcd
        self.base = base
    }

    public var name: String { (base?.name ?? "none") + "+etcd" }
    /// An etcd write is a Raft round and an fsync: allow it more than a cache look-up.
    public var generationTimeout: Duration { .seconds(2) }

    public func get(_ key: String) async throws -> Data? { try await base?.get(key) }
    public func set(_ key: String, _ value: Data, ttl: Duration) async throws { try await base?.set(key, value, ttl: ttl) }
    public func clear() async throws { try await base?.clear() }
    public func close() async { await base?.close() }

    /// While etcd is failing, a query does not wait on it: the generation is
    /// unknown, so the query bypasses the cache (never a stale answer).
    public func generation(_ collection: String) async throws -> Int64 {
        if etcd.failedRecently() { throw RagError(.unavailable, "etcd is unreachable: \(etcd.unreachable ?? "")") }
        return try await etcd.get(Self.prefix + collection)?.modRevision ?? 0
    }

    public func bumpGeneration(_ collection: String) async throws {
        try await etcd.put(Self.prefix + collection, Data())
    }
}

/// A shared cache whose generation calls go over the network to a consensus
/// store: they get their own, longer timeout.
public protocol GenerationAuthority {
    var generationTimeout: Duration { get }
}

/// API keys of coordinators that share etcd (`/ragd/keys/<id>`, JSON with the
/// secret's SHA-256): a key made or revoked through one coordinator holds on
/// every other within the authorizer's refresh interval.
public final class EtcdKeyStore: APIKeyStore {
    let etcd: EtcdClient
    static let prefix = "/ragd/keys/"

    public init(etcd: EtcdClient) {
        self.etcd = etcd
    }

    public var isShared: Bool { true }

    public func all() async throws(RagError) -> [APIKeyRecord] {
        try await etcd.list(prefix: Self.prefix).kvs.map { (kv) throws(RagError) in try Self.decode(kv.value) }
    }

    public func insert(_ record: APIKeyRecord) async throws(RagError) -> Bool {
        try await etcd.create(Self.prefix + record.id, try Self.encode(record)).created
    }

    public func revoke(id: String) async throws(RagError) -> APIKeyRecord {
        guard (try? CollectionRegistry.validateName(id)) != nil, let kv = try await etcd.get(Self.prefix + id) else {
            throw .notFound("no key with id \(id.truncatedUTF8(maxBytes: 64).debugDescription)")
        }
        var record = try Self.decode(kv.value)
        record.revoked = true
        try await etcd.put(Self.prefix + id, try Self.encode(record))
        return record
    }

    static func encode(_ r: APIKeyRecord) throws(RagError) -> Data {
        do { return try JSONEncoder().encode(r) } catch { throw RagError(.internal, "key record: \(error)") }
    }

    static func decode(_ data: Data) throws(RagError) -> APIKeyRecord {
        do { return try JSONDecoder().decode(APIKeyRecord.self, from: data) } catch {
            throw RagError(.dataLoss, "a key record in etcd is not valid: \(error)")
        }
    }
}
