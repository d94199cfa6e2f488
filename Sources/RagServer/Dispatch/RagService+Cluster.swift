import Foundation
import RagCore
import RagWire

// ClusterStatus: the nodes registered in etcd beside the layout in use.
extension RagService {
    var clusterHandlers: [String: RPCHandler] {
        [RagMethod.clusterStatus.rawValue: .unary { try await clusterStatus($0, $1) }]
    }

    func clusterStatus(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        _ = try FrameCodec.payload(Ragd_V1_ClusterStatusRequest.self, from: payload)
        guard let etcd = controlPlane else {
            throw RagError.failedPrecondition("this server has no control plane: start coordinators with --etcd")
        }
        var r = Ragd_V1_ClusterStatusResponse()
        let layout = cluster?.configuration
        let replicas = Set(layout?.shards.flatMap(\.replicas) ?? [])
        r.shards = UInt32(layout?.shards.count ?? 0)
        r.replicationFactor = UInt32(layout?.shards.first?.replicas.count ?? 0)
        do {
            let nodes = try await NodeRegistration.nodes(etcd)
            r.nodes = nodes.map { n in
                Ragd_V1_ClusterNode.with {
                    $0.id = n.id
                    $0.role = n.role
                    $0.publicAddress = n.publicAddress
                    $0.internalAddress = n.internalAddress
                    $0.version = n.version
                    $0.startedAt = n.startedAt
                    $0.chunks = UInt64(max(0, n.chunks))
                    $0.freeBytes = UInt64(max(0, n.freeBytes))
                    $0.inLayout = replicas.contains(n.internalAddress)
                }
            }
            let live = Set(nodes.map(\.internalAddress))
            r.unregistered = replicas.filter { !live.contains($0) }.sorted()
            metrics?.clusterNodes(nodes.count)
        } catch {
            r.degraded = "etcd unreachable (\(error.message))"
        }
        return try FrameCodec.bytes(r)
    }
}
