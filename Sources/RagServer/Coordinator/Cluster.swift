import Foundation
import Logging
import RagClient
import RagCore
import RagWire
import SwiftProtobuf
import Synchronization

/// One shard node as the coordinator sees it: a pooled, kept-alive connection
/// (reconnected after the node restarts) and its health.
public final class Replica: Sendable {
    public let address: String
    let client: RagClient

    struct Health {
        var latency: Double = 0
        var downSince: ContinuousClock.Instant?
        var lastError = ""
    }

    let health = Mutex(Health())

    init(address: String, tls: ClientTLS?) throws(RagError) {
        self.address = address
        let (host, port) = try ClusterConfiguration.address(address)
        client = RagClient(host: host, port: port, tls: tls)
    }

    func succeeded(latency: Double) { health.withLock { $0.latency = latency; $0.downSince = nil } }

    func failed(_ error: RagError) {
        health.withLock { h in
            if h.downSince == nil { h.downSince = .now }
            h.lastError = error.description
        }
    }

    var isDown: Bool { health.withLock { $0.downSince != nil } }
}

/// Where one logical partition's calls go, under one placement version.
struct Route: Sendable {
    var version: Int64
    /// The slot this route was made from.
    var slot: Placement.Slot
    /// Replicas that answer reads (in sync).
    var replicas: [Replica]
    /// The replica that orders writes.
    var primary: (id: String, replica: Replica)?
    /// The other in-sync replicas: every write must reach them, or they are
    /// taken out of the in-sync set before it is acknowledged.
    var followers: [(id: String, replica: Replica)]
    /// Nodes receiving a copy (a move): every write must reach them, or the move is undone.
    var joining: [(id: String, replica: Replica)]
    /// Nodes a partition is moving off: written to, never read.
    var leaving: [Replica]
    /// A cluster file's placement: no in-sync set to change, so every replica must take every write.
    var isStatic: Bool { version == 0 }
}

/// The shard nodes of a cluster and the placement that maps logical partitions
/// to them, shared by every collection's `RemoteShard`s. The placement is
/// fixed (a cluster file) or follows etcd: watched, and refreshed at once when
/// a node says the version used is stale. A coordinator keeps nothing on disk
/// for writes: what was acknowledged is on every in-sync replica.
public final class Cluster: Sendable {
    private let state: Mutex<(placement: Placement, nodes: [String: Replica])>
    /// nil: a static cluster file.
    public let store: PlacementStore?
    let tls: ClientTLS?
    let logger: Logger
    /// Called with each newer placement (metrics).
    let observe: @Sendable (Placement) -> Void
    /// Largest ShardWrite payload: the frame limit, less room for the frame's own fields.
    public let maxWriteBytes: Int

    /// `tls`: the coordinator's client certificate and the cluster CA, for the
    /// shards' internal listeners (nil: plain TCP, only with --insecure).
    public init(placement: Placement, store: PlacementStore?, tls: ClientTLS? = nil, maxFrameSize: Int = 16 * 1024 * 1024,
                logger: Logger, observe: @escaping @Sendable (Placement) -> Void = { _ in }) throws(RagError) {
        maxWriteBytes = max(64 * 1024, maxFrameSize - 64 * 1024)
        state = Mutex((placement, [:]))
        self.store = store
        self.tls = tls
        self.logger = logger
        self.observe = observe
        observe(placement)
    }

    public var placement: Placement { state.withLock { $0.placement } }

    /// Logical partitions of new collections.
    public var partitions: Int { placement.partitions }

    /// The connection to a node (made on first use, kept while the process runs).
    func node(address: String) throws(RagError) -> Replica {
        if let r = state.withLock({ $0.nodes[address] }) { return r }
        let made = try Replica(address: address, tls: tls)
        return state.withLock { s in
            if let r = s.nodes[address] { return r }
            s.nodes[address] = made
            return made
        }
    }

    /// The nodes of logical partition `partition` now.
    func route(_ partition: Int) throws(RagError) -> Route {
        let p = placement
        guard partition < p.slots.count else { throw RagError(.failedPrecondition, "partition \(partition) is outside the placement (\(p.slots.count) partitions)") }
        let slot = p.slots[partition]
        guard !slot.replicas.isEmpty else {
            throw RagError(.unavailable, "logical partition \(partition) has no node yet: add shard nodes with ragctl cluster add-node")
        }
        func replica(_ id: String) throws(RagError) -> Replica { try node(address: p.members[id]?.address ?? id) }
        var joining: [(String, Replica)] = []
        for id in slot.joining { joining.append((id, try replica(id))) }
        var replicas: [Replica] = []
        for id in slot.readers { replicas.append(try replica(id)) }
        var followers: [(String, Replica)] = []
        for id in slot.writers where id != slot.primary { followers.append((id, try replica(id))) }
        var leaving: [Replica] = []
        for id in slot.leaving { leaving.append(try replica(id)) }
        guard let primary = slot.primary else {
            throw RagError(.unavailable, "logical partition \(partition) has no in-sync replica: its nodes are down or still catching up")
        }
        return Route(version: p.version, slot: slot, replicas: replicas, primary: (primary, try replica(primary)), followers: followers,
                     joining: joining, leaving: leaving)
    }

    /// Changes partition `partition`'s slot in etcd if it is still `seen` (other
    /// partitions may have changed meanwhile: the change is made over them);
    /// else throws a stale-placement refusal, so the caller routes again.
    func changeSlot(_ partition: Int, from seen: Placement.Slot, _ change: (inout Placement.Slot) throws(RagError) -> Void) async throws(RagError) {
        guard let store else { throw RagError(.unavailable, "a static cluster cannot change its replicas") }
        for _ in 0..<32 {
            guard let (p, revision) = try await store.load() else { throw RagError(.unavailable, "no placement in etcd") }
            guard partition < p.slots.count, p.slots[partition] == seen else {
                adopt(p)
                throw RagError(.aborted, "\(Placement.staleMarker): partition \(partition) changed (placement version \(p.version))")
            }
            var slot = seen
            try change(&slot)
            let next = p.next { $0.slots[partition] = slot }
            if try await store.publish(next, over: revision) {
                adopt(next)
                return
            }
        }
        throw RagError(.unavailable, "partition \(partition): the placement in etcd changes too often to record a replica change; try again")
    }

    /// Takes `next` if it is newer than the placement in use.
    @discardableResult
    public func adopt(_ next: Placement) -> Bool {
        let newer = state.withLock { s in
            guard next.version > s.placement.version else { return false }
            s.placement = next
            return true
        }
        if newer {
            logger.info("placement version \(next.version)")
            observe(next)
        }
        return newer
    }

    /// Reads the placement from etcd now (after a node refused a stale version).
    public func refresh() async throws(RagError) {
        guard let store else { return }
        if let (p, _) = try await store.load() { adopt(p) }
    }

    /// Follows the placement in etcd until cancelled (a read every `every`; a
    /// node's refusal of a stale version triggers an immediate one as well).
    public func watch(every: Duration = .milliseconds(500)) async {
        guard store != nil else { return }
        while !Task.isCancelled {
            try? await refresh()
            try? await Task.sleep(for: every)
        }
    }

    /// Health of every node of the placement, for `Health` on the coordinator.
    public func health() -> [Ragd_V1_ReplicaHealth] {
        let p = placement
        var firstSlot: [String: Int] = [:]
        for (i, s) in p.slots.enumerated() { for id in s.writeSet where firstSlot[id] == nil { firstSlot[id] = i } }
        return p.members.keys.sorted().compactMap { id -> Ragd_V1_ReplicaHealth? in
            guard let m = p.members[id], let r = try? node(address: m.address) else { return nil }
            let h = r.health.withLock { $0 }
            // Partitions it holds but is not read for: it missed writes and catches up.
            let behind = p.slots.filter { $0.replicas.contains(id) && !$0.readers.contains(id) }.count
            return Ragd_V1_ReplicaHealth.with {
                $0.shard = UInt32(firstSlot[id] ?? 0)
                $0.address = r.address
                $0.state = h.downSince != nil ? "down" : (behind > 0 ? "lagging" : "up")
                $0.latencySeconds = h.latency
                $0.pendingWrites = UInt64(behind)
            }
        }
    }

    public func close() async {
        for r in state.withLock({ Array($0.nodes.values) }) { await r.client.close() }
    }
}

extension Placement {
    /// How a node's refusal of an older placement version begins (ABORTED):
    /// the code alone is shared with other retryable refusals.
    static let staleMarker = "stale placement"

    /// A node's refusal of a request routed by an older placement version.
    static func isStale(_ error: RagError) -> Bool {
        error.code == .aborted && error.message.hasPrefix(staleMarker)
    }
}
