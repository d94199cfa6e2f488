import Foundation
import RagCore
import RagWire

// ClusterStatus and ClusterChange: nodes, placement and moves, and the
// membership changes that make the rebalancer move partitions.
extension RagService {
    var clusterHandlers: [String: RPCHandler] {
        [RagMethod.clusterStatus.rawValue: .unary { try await clusterStatus($0, $1) },
         RagMethod.clusterChange.rawValue: .unary { try await clusterChange($0, $1) },
         RagMethod.clusterVerify.rawValue: .unary { try await clusterVerify($0, $1) }]
    }

    func controlPlaneParts() throws(RagError) -> (EtcdClient, Cluster, PlacementStore) {
        guard let etcd = controlPlane, let cluster, let store = cluster.store else {
            throw RagError.failedPrecondition("this server has no control plane: start coordinators with --etcd")
        }
        return (etcd, cluster, store)
    }

    func clusterStatus(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        _ = try FrameCodec.payload(Ragd_V1_ClusterStatusRequest.self, from: payload)
        let (etcd, cluster, store) = try controlPlaneParts()
        var r = Ragd_V1_ClusterStatusResponse()
        try? await cluster.refresh()
        let placement = cluster.placement
        r.shards = UInt32(placement.partitions)
        r.replicationFactor = UInt32(placement.replication)
        r.placementVersion = UInt64(placement.version)
        r.unassigned = UInt64(placement.unassigned)
        r.outOfSync = UInt64(placement.slots.reduce(0) { $0 + $1.replicas.count - $1.readers.count })
        let load = placement.load
        do {
            let nodes = try await NodeRegistration.nodes(etcd)
            let byAddress = Dictionary(nodes.map { ($0.internalAddress, $0) }, uniquingKeysWith: { a, _ in a })
            let memberAddresses = Set(placement.members.values.map(\.address))
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
                    $0.inLayout = memberAddresses.contains(n.internalAddress)
                }
            }
            r.members = placement.members.keys.sorted().map { id in
                let m = placement.members[id]!
                return Ragd_V1_ClusterMember.with {
                    $0.id = id
                    $0.address = m.address
                    $0.state = m.state
                    $0.live = byAddress[m.address] != nil
                    $0.partitions = UInt32(load[id] ?? 0)
                    $0.chunks = UInt64(max(0, byAddress[m.address]?.chunks ?? 0))
                    $0.outOfSync = UInt32(placement.slots.filter { $0.replicas.contains(id) && !$0.readers.contains(id) }.count)
                    $0.primaryOf = UInt32(placement.slots.filter { $0.primary == id }.count)
                }
            }
            r.unregistered = r.members.filter { !$0.live }.map(\.address).sorted()
            r.moves = try await store.moves().map { Self.wire($0.0) }
            r.mover = try await etcd.get(PlacementStore.moverKey).map { String(decoding: $0.value, as: UTF8.self) } ?? ""
            metrics?.clusterNodes(nodes.count)
        } catch {
            r.degraded = "etcd unreachable (\(error.message))"
        }
        return try FrameCodec.bytes(r)
    }

    func clusterVerify(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        let req = try FrameCodec.payload(Ragd_V1_ClusterVerifyRequest.self, from: payload)
        guard let cluster else { throw RagError.failedPrecondition("ClusterVerify is served by coordinators (--role coordinator)") }
        var infos = await coordinator.registry.all().map(\.info)
        if !req.collection.isEmpty {
            infos = infos.filter { $0.name == req.collection }
            guard !infos.isEmpty else { throw RagError.notFound("collection \(req.collection.truncatedUTF8(maxBytes: 64).debugDescription) does not exist") }
        }
        let report = await ReplicaVerifier(cluster: cluster).verify(infos)
        var out = Ragd_V1_ClusterVerifyResponse()
        out.partitions = UInt64(report.partitions)
        out.replicas = UInt64(report.replicas)
        out.documents = UInt64(report.documents)
        out.mismatchCount = UInt64(report.mismatches.count)
        out.mismatches = report.mismatches.prefix(100).map { m in
            Ragd_V1_ReplicaMismatch.with {
                $0.collection = m.collection
                $0.partition = UInt32(m.partition)
                $0.documentID = m.documentID
                $0.hashes = m.hashes
            }
        }
        out.skipped = report.skipped
        return try FrameCodec.bytes(out)
    }

    func clusterChange(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        let req = try FrameCodec.payload(Ragd_V1_ClusterChangeRequest.self, from: payload)
        let (etcd, cluster, store) = try controlPlaneParts()
        var out = Ragd_V1_ClusterChangeResponse()
        let node = req.node.trimmingCharacters(in: .whitespaces)
        switch req.action {
        case "rebalance":
            guard req.maxBytesPerSecond >= 0, req.maxBytesPerSecond.isFinite else { throw RagError.invalidArgument("max_bytes_per_second must be 0 or more") }
            if req.maxBytesPerSecond > 0 {
                var settings = try await store.settings()
                settings.maxBytesPerSecond = req.maxBytesPerSecond
                try await store.save(settings)
            }
            out.message = "rebalancing"
        case "add-node", "drain-node", "remove-node":
            guard !node.isEmpty else { throw RagError.invalidArgument("\(req.action) needs a node id or internal address") }
            let nodes = try await NodeRegistration.nodes(etcd)
            out.message = try await changeMembership(req.action, node: node, registered: nodes, store: store, cluster: cluster)
        default:
            throw RagError.invalidArgument("unknown cluster action \(req.action.truncatedUTF8(maxBytes: 40).debugDescription): add-node, drain-node, remove-node or rebalance")
        }
        rebalancer?.poke()
        let placement = cluster.placement
        out.placementVersion = UInt64(placement.version)
        out.planned = RebalancePlanner.plan(placement, limit: 64).map { m in
            Ragd_V1_PartitionMove.with { $0.partition = UInt32(m.partition); $0.from = m.from ?? ""; $0.to = m.to; $0.phase = "planned" }
        }
        return try FrameCodec.bytes(out)
    }

    /// Applies one membership change to the placement (compare-and-swap, retried on a race).
    func changeMembership(_ action: String, node: String, registered: [NodeInfo], store: PlacementStore, cluster: Cluster) async throws(RagError) -> String {
        for _ in 0..<8 {
            guard let (placement, revision) = try await store.load() else { throw RagError(.failedPrecondition, "etcd holds no placement") }
            // A member is named by its id, its internal address, or the id it registered under.
            let member = placement.member(node) ?? registered.first { $0.id == node }.flatMap { placement.member($0.internalAddress) }
            var next = placement
            var message: String
            switch action {
            case "add-node":
                if let id = member {
                    guard placement.members[id]?.state != "active" else { return "node \(id) is already an active member" }
                    next.members[id]?.state = "active"
                    message = "node \(id) is active again"
                } else {
                    guard let n = registered.first(where: { $0.id == node || $0.internalAddress == node }) else {
                        throw RagError(.failedPrecondition, "node \(node.debugDescription) is not registered in etcd: start it with --role shard --etcd … (and --internal-port), then add it")
                    }
                    guard n.role == "shard", !n.internalAddress.isEmpty else {
                        throw RagError(.failedPrecondition, "node \(n.id) is a \(n.role), not a shard node with an internal listener")
                    }
                    guard !placement.members.values.contains(where: { $0.address == n.internalAddress }) else {
                        throw RagError(.failedPrecondition, "address \(n.internalAddress) already belongs to another member")
                    }
                    next.members[n.id] = Placement.Member(address: n.internalAddress, state: "active")
                    message = "node \(n.id) added; the rebalancer moves its share of partitions to it"
                }
            case "drain-node":
                guard let id = member else { throw RagError.invalidArgument("node \(node.debugDescription) is not a member of the placement") }
                let active = placement.members.filter { $0.value.state == "active" && $0.key != id }.count
                guard active >= placement.replication else {
                    throw RagError(.failedPrecondition, "draining \(id) would leave \(active) active nodes for \(placement.replication) replicas per partition: add a node first")
                }
                next.members[id]?.state = "draining"
                message = "node \(id) is draining: its \(placement.load[id] ?? 0) partitions move to the others"
            default:
                guard let id = member else { throw RagError.invalidArgument("node \(node.debugDescription) is not a member of the placement") }
                let held = placement.slots.filter { $0.writeSet.contains(id) }.count
                guard held == 0 else {
                    throw RagError(.failedPrecondition, "node \(id) still holds \(held) partitions: drain it first (ragctl cluster drain-node \(id)) and wait for the moves")
                }
                next.members[id] = nil
                message = "node \(id) removed from the placement"
            }
            next.version += 1
            if try await store.publish(next, over: revision) {
                cluster.adopt(next)
                return message
            }
        }
        throw RagError(.aborted, "the placement kept changing; try again")
    }

    static func wire(_ m: MoveRecord) -> Ragd_V1_PartitionMove {
        Ragd_V1_PartitionMove.with {
            $0.partition = UInt32(m.partition)
            $0.from = m.from ?? ""
            $0.to = m.to
            $0.phase = m.phase
            $0.copiedDocuments = UInt64(m.copiedDocuments)
            $0.totalDocuments = UInt64(m.totalDocuments)
            $0.copiedBytes = UInt64(m.copiedBytes)
            $0.bytesPerSecond = m.bytesPerSecond
            $0.startedAt = m.startedAt
            $0.error = m.error
        }
    }
}
