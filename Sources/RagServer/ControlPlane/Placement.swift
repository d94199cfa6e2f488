import Foundation
import RagCore

/// Which nodes hold each logical partition, versioned. Every collection is
/// split into the same `partitions` logical partitions (a document's partition
/// is `StableHash.partition(collection, id, partitions)` and never changes);
/// partition p of every collection lives on `slots[p]`'s nodes.
///
/// A partition being moved has a node `joining` (receives writes, not reads,
/// while its copy is made) and then a node `leaving` (still receives writes,
/// no reads, until every coordinator has stopped reading it). Each step is one
/// new version, and any two consecutive versions are compatible: what one
/// reads, the other writes. Nodes are fenced at each version before the next
/// is published, so at most two consecutive versions are ever in use.
public struct Placement: Codable, Sendable, Hashable {
    public struct Member: Codable, Sendable, Hashable {
        /// Internal address (host:port) where coordinators send shard RPCs.
        public var address: String
        /// "active", or "draining" (everything moves off it; it gets nothing new).
        public var state: String

        public init(address: String, state: String = "active") {
            self.address = address
            self.state = state
        }
    }

    public struct Slot: Codable, Sendable, Hashable {
        /// Read and write replicas (node ids).
        public var replicas: [String]
        public var joining: [String] = []
        public var leaving: [String] = []

        /// Replicas that hold every acknowledged write (nil: all of `replicas`).
        /// A replica that misses a write is taken out before the write is
        /// acknowledged; it comes back after catching up from the primary.
        public var inSync: [String]?
        /// Members of `inSync` that still replay entries ordered before they
        /// joined it: they get every write, and are not read yet.
        public var syncing: [String]?

        /// Every node a write must reach.
        public var writeSet: [String] { replicas + joining + leaving }
        /// Replicas every write must reach (in `replicas` order).
        public var writers: [String] { replicas.filter { inSync?.contains($0) ?? true } }
        /// Replicas that answer reads.
        public var readers: [String] { writers.filter { !(syncing ?? []).contains($0) } }
        /// The replica that orders writes: the first reader.
        public var primary: String? { readers.first }

        /// Takes `ids` out of the in-sync set.
        mutating func dropInSync(_ ids: [String]) {
            inSync = writers.filter { !ids.contains($0) }
            syncing = (syncing ?? []).filter { !ids.contains($0) }
        }
    }

    /// 0 for a static cluster file (never fenced); from 1 in etcd.
    public var version: Int64
    public var partitions: Int
    public var replication: Int
    /// Replicas that must commit a write (nil: all of a slot's replicas).
    public var writeQuorum: Int?
    public var members: [String: Member]
    public var slots: [Slot]

    public static let defaultPartitions = 64

    /// The static placement of a cluster file: shard s is logical partition s.
    public init(file: ClusterConfiguration) {
        version = 0
        partitions = file.shards.count
        replication = file.shards.first?.replicas.count ?? 1
        writeQuorum = file.writeQuorum
        var members: [String: Member] = [:]
        var slots: [Slot] = []
        for s in file.shards.sorted(by: { $0.id < $1.id }) {
            for a in s.replicas { members[a] = Member(address: a, state: "active") }
            slots.append(Slot(replicas: s.replicas))
        }
        self.members = members
        self.slots = slots
    }

    /// The first placement in etcd from a cluster file: `partitions` logical
    /// partitions, partition p on shard p mod S (so collections created by the
    /// file's coordinator, with S partitions, stay exactly where they are).
    public init(seed file: ClusterConfiguration, partitions: Int) {
        let shards = file.shards.sorted(by: { $0.id < $1.id })
        let n = max(partitions, shards.count)
        version = 1
        self.partitions = n
        replication = shards.first?.replicas.count ?? 1
        writeQuorum = file.writeQuorum
        members = [:]
        for s in shards { for a in s.replicas { members[a] = Member(address: a, state: "active") } }
        slots = (0..<n).map { Slot(replicas: shards[$0 % shards.count].replicas) }
    }

    /// An empty cluster: no nodes yet, every partition unassigned until `add-node`.
    public init(partitions: Int, replication: Int) {
        version = 1
        self.partitions = partitions
        self.replication = replication
        writeQuorum = nil
        members = [:]
        slots = Array(repeating: Slot(replicas: []), count: partitions)
    }

    public func validate() throws(RagError) {
        guard (1...ShardHost.maxPartition + 1).contains(partitions), slots.count == partitions else {
            throw RagError(.dataLoss, "placement: \(slots.count) slots for \(partitions) partitions")
        }
        guard replication >= 1 else { throw RagError(.dataLoss, "placement: replication \(replication)") }
        for (p, s) in slots.enumerated() {
            for id in s.writeSet where members[id] == nil {
                throw RagError(.dataLoss, "placement: partition \(p) names node \(id.debugDescription), which is not a member")
            }
        }
    }

    // MARK: questions

    /// Logical partitions each member is a replica of (joining and leaving not counted).
    public var load: [String: Int] {
        var n = members.mapValues { _ in 0 }
        for s in slots { for id in s.replicas { n[id, default: 0] += 1 } }
        return n
    }

    /// Partition replicas with no node (fewer replicas than the replication factor).
    public var unassigned: Int { slots.reduce(0) { $0 + max(0, replication - $1.replicas.count - $1.joining.count) } }

    /// Finds a member by id or by internal address.
    public func member(_ idOrAddress: String) -> String? {
        if members[idOrAddress] != nil { return idOrAddress }
        return members.first { $0.value.address == idOrAddress }?.key
    }

    /// Whether any slot is in the middle of a move.
    public var moving: Bool { slots.contains { !$0.joining.isEmpty || !$0.leaving.isEmpty } }

    /// The same placement one version later.
    func next(_ change: (inout Placement) -> Void) -> Placement {
        var p = self
        change(&p)
        p.version = version + 1
        return p
    }

    func encoded() throws(RagError) -> Data {
        do {
            let e = JSONEncoder()
            e.outputFormatting = .sortedKeys
            return try e.encode(self)
        } catch { throw RagError(.internal, "placement: \(error)") }
    }

    static func decode(_ data: Data) throws(RagError) -> Placement {
        let p: Placement
        do { p = try JSONDecoder().decode(Placement.self, from: data) } catch {
            throw RagError(.dataLoss, "the placement in etcd is not valid: \(error)")
        }
        try p.validate()
        return p
    }
}
