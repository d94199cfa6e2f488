import Foundation
import RagCore
import RagWire

public typealias APIKeyInfo = Ragd_V1_ApiKey

extension RagClient {
    /// Creates an API key (admin keys only); the token in the answer is shown
    /// this once: the server keeps only its hash.
    public func createKey(name: String, role: String, collections: [String] = [], queriesPerSecond: Double = 0,
                          documentsPerSecond: Double = 0, timeout: Duration? = nil) async throws(RagError) -> (key: APIKeyInfo, token: String) {
        let r = try await call(.createKey, Ragd_V1_CreateKeyRequest.with {
            $0.name = name
            $0.role = role
            $0.collections = collections
            $0.queriesPerSecond = queriesPerSecond
            $0.documentsPerSecond = documentsPerSecond
        }, as: Ragd_V1_CreateKeyResponse.self, timeout: timeout)
        return (r.key, r.token)
    }

    public func listKeys(timeout: Duration? = nil) async throws(RagError) -> [APIKeyInfo] {
        try await call(.listKeys, Ragd_V1_ListKeysRequest(), as: Ragd_V1_ListKeysResponse.self, timeout: timeout).keys
    }

    @discardableResult
    public func revokeKey(id: String, timeout: Duration? = nil) async throws(RagError) -> APIKeyInfo {
        try await call(.revokeKey, Ragd_V1_RevokeKeyRequest.with { $0.id = id }, as: Ragd_V1_RevokeKeyResponse.self, timeout: timeout).key
    }
}

public typealias ClusterStatus = Ragd_V1_ClusterStatusResponse

extension RagClient {
    /// The nodes registered in etcd beside the layout in use (admin; coordinators with --etcd).
    public func clusterStatus(timeout: Duration? = nil) async throws(RagError) -> ClusterStatus {
        try await call(.clusterStatus, Ragd_V1_ClusterStatusRequest(), as: Ragd_V1_ClusterStatusResponse.self, timeout: timeout)
    }

    /// Every replica of every partition compared document by document (admin).
    public func clusterVerify(collection: String = "", timeout: Duration? = nil) async throws(RagError) -> Ragd_V1_ClusterVerifyResponse {
        try await call(.clusterVerify, Ragd_V1_ClusterVerifyRequest.with { $0.collection = collection }, as: Ragd_V1_ClusterVerifyResponse.self, timeout: timeout)
    }

    /// A membership change or a rebalance (admin): `action` is add-node,
    /// drain-node, remove-node or rebalance; `node` an id or internal address.
    public func clusterChange(_ action: String, node: String = "", maxBytesPerSecond: Double = 0,
                              timeout: Duration? = nil) async throws(RagError) -> Ragd_V1_ClusterChangeResponse {
        try await call(.clusterChange, Ragd_V1_ClusterChangeRequest.with {
            $0.action = action
            $0.node = node
            $0.maxBytesPerSecond = maxBytesPerSecond
        }, as: Ragd_V1_ClusterChangeResponse.self, timeout: timeout)
    }
}
