import Foundation
import RagCore
import RagWire
import Synchronization

/// Turns the `api_key` of a request into a `Principal`, and holds the keys of
/// a running server in memory (loaded at start, changed by the key RPCs).
///
/// A server with no key at all is open (every caller is `Principal.anonymous`)
/// unless `required`: ragd sets that whenever it listens beyond loopback. Once
/// one key exists, every call needs a key, even after all keys are revoked.
///
/// With a shared store (etcd), `refreshLoop` re-reads it every second, so keys
/// made or revoked through another coordinator take effect here within that.
public final class Authorizer: Sendable {
    let store: any APIKeyStore
    let required: Bool
    private let keys: Mutex<(records: [String: APIKeyRecord], limits: [String: KeyLimits], everHadKeys: Bool)>

    public init(store: any APIKeyStore, required: Bool) async throws(RagError) {
        self.store = store
        self.required = required
        let all = try await store.all()
        keys = Mutex((Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) }),
                      Dictionary(uniqueKeysWithValues: all.map { ($0.id, KeyLimits($0)) }), !all.isEmpty))
    }

    /// Takes in what the store holds now; rate-limit buckets of unchanged keys are kept.
    func refresh() async throws(RagError) {
        let all = try await store.all()
        keys.withLock { k in
            for r in all {
                let old = k.records[r.id]
                k.records[r.id] = r
                if r.revoked { k.limits[r.id] = nil } else if old == nil || old != r { k.limits[r.id] = KeyLimits(r) }
            }
            if !all.isEmpty { k.everHadKeys = true }
        }
    }

    /// Re-reads a shared store every `interval` until cancelled (an unreachable
    /// store keeps the keys seen last).
    public func refreshLoop(every interval: Duration = .seconds(1)) async {
        guard store.isShared else { return }
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            try? await refresh()
        }
    }

    /// Whether calls must carry a key.
    public var enforcing: Bool { required || keys.withLock { $0.everHadKeys } }

    /// The smallest role each public method needs. Methods not listed (shard
    /// RPCs) are never served on the public listener.
    static let minimumRole: [String: KeyRole] = {
        var m: [String: KeyRole] = [:]
        for r in [RagMethod.query, .stream, .stats, .health, .listCollections, .feedback, .submitJob, .getJob, .listJobs, .cancelJob] {
            m[r.rawValue] = .read
        }
        for r in [RagMethod.index, .indexStream, .delete] { m[r.rawValue] = .write }
        for r in [RagMethod.clearCache, .createExperiment, .listExperiments, .stopExperiment, .experimentReport, .createKey, .listKeys, .revokeKey, .clusterStatus, .clusterChange, .clusterVerify,
                  .createSnapshot, .listSnapshots, .deleteSnapshot, .readSnapshot, .uploadSnapshot, .restoreSnapshot] {
            m[r.rawValue] = .admin
        }
        return m
    }()

    /// Who sent `token`, checked against what `method` needs.
    /// UNAUTHENTICATED: no key, or one that is unknown or revoked (not told apart).
    /// PERMISSION_DENIED: a valid key whose role is too small.
    public func authenticate(_ token: String, method: String) throws(RagError) -> Principal {
        guard enforcing else { return .anonymous }
        guard !token.isEmpty else {
            throw .unauthenticated("this server requires an API key (frame metadata api_key; ragctl --api-key or RAGD_API_KEY)")
        }
        guard let parsed = APIKeyToken(parsing: token),
              let (record, limits) = keys.withLock({ k in k.records[parsed.id].map { ($0, k.limits[parsed.id]) } }),
              !record.revoked, parsed.matches(record)
        else {
            throw .unauthenticated("the API key is unknown or revoked")
        }
        let principal = Principal(keyID: record.id, role: record.role, collections: record.collections, limits: limits)
        guard let needed = Self.minimumRole[method] else {
            throw .permissionDenied("\(method.truncatedUTF8(maxBytes: 64)) is not served on this listener")
        }
        try principal.require(needed, for: method)
        return principal
    }

    // MARK: key management (admin RPCs and start-up)

    public func create(name: String, role: KeyRole, collections: [String], queriesPerSecond: Double,
                       documentsPerSecond: Double) async throws(RagError) -> (APIKeyRecord, APIKeyToken) {
        let (record, token) = try await store.create(name: name, role: role, collections: collections,
                                                     queriesPerSecond: queriesPerSecond, documentsPerSecond: documentsPerSecond)
        keys.withLock {
            $0.records[record.id] = record
            $0.limits[record.id] = KeyLimits(record)
            $0.everHadKeys = true
        }
        return (record, token)
    }

    public func close() async { await store.close() }

    public func list() -> [APIKeyRecord] {
        keys.withLock { Array($0.records.values) }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    public func revoke(id: String) async throws(RagError) -> APIKeyRecord {
        let record = try await store.revoke(id: id)
        keys.withLock {
            $0.records[id] = record
            $0.limits[id] = nil
        }
        return record
    }
}
