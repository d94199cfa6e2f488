import Foundation
import RagCore

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
