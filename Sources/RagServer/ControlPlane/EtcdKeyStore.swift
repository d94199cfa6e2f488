import Foundation
import RagCore

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
