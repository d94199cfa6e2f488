import Foundation
import Logging
import RagCore
import RagWire
import Synchronization

/// Runs on every coordinator of an etcd cluster; one at a time is the mover
/// (it holds `/ragd/cluster/mover` under a lease). The mover finishes any move
/// recorded in etcd, then asks the planner for the next one, one move at a
/// time (so at most one per partition). A mover that dies loses the lease
/// within its TTL, and another coordinator (or the same one restarted) takes
/// over and resumes the recorded move where its record says it was.
public final class Rebalancer: Sendable {
    let store: PlacementStore
    let cluster: Cluster
    let mover: PartitionMover
    /// This process, as the mover key names it.
    public let me: String
    let logger: Logger
    let ttl: Int
    private let leading = Atomic<Bool>(false)
    /// Set by ClusterChange: plan again now rather than at the next tick.
    private let wake = Atomic<Int>(0)
    /// How often replicas are compared with their primary (nil: never).
    let antiEntropyInterval: Duration?
    private let lastAntiEntropy = Mutex<ContinuousClock.Instant?>(nil)

    public init(store: PlacementStore, cluster: Cluster, me: String, logger: Logger, metrics: RagMetrics?, ttl: Int = 5,
                antiEntropyInterval: Duration? = .seconds(10)) {
        self.antiEntropyInterval = antiEntropyInterval
        self.store = store
        self.cluster = cluster
        self.me = me
        self.logger = logger
        self.ttl = ttl
        mover = PartitionMover(store: store, cluster: cluster, me: me, logger: logger, metrics: metrics)
    }

    public var isMover: Bool { leading.load(ordering: .relaxed) }

    public func poke() { wake.add(1, ordering: .relaxed) }

    /// Campaigns for the mover's lease and, while holding it, moves partitions. Runs until cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.campaign() }
            group.addTask { await self.work() }
        }
    }

    func campaign() async {
        var lease: Int64 = 0
        while !Task.isCancelled {
            do {
                if lease != 0, try await store.etcd.keepAlive(lease) == 0 { lease = 0 }
                if lease == 0 {
                    leading.store(false, ordering: .relaxed)
                    lease = try await store.etcd.grantLease(ttl: ttl)
                }
                if !leading.load(ordering: .relaxed) {
                    let me = Data(self.me.utf8)
                    let won = try await store.etcd.transaction([.modRevision(PlacementStore.moverKey, 0)],
                                                               [.putLeased(PlacementStore.moverKey, me, lease: lease)])
                    if won { logger.info("this coordinator is the partition mover now (\(self.me))") }
                    leading.store(won, ordering: .relaxed)
                }
            } catch {
                leading.store(false, ordering: .relaxed)
                if !Task.isCancelled { logger.debug("mover lease: \(error)") }
            }
            try? await Task.sleep(for: .milliseconds(ttl * 1000 / 3))
        }
        leading.store(false, ordering: .relaxed)
        if lease != 0 { try? await store.etcd.revokeLease(lease) }
    }

    func work() async {
        var failures = 0
        while !Task.isCancelled {
            var busy = false
            if isMover {
                do {
                    busy = try await step()
                    failures = 0
                } catch {
                    failures += 1
                    logger.warning("rebalancer: \(error)")
                }
            }
            if !busy {
                let seen = wake.load(ordering: .relaxed)
                // Back off after failures (a node down, etcd away); a poke wakes it early.
                let pause = failures == 0 ? 500 : min(5000, 500 * failures)
                var waited = 0
                while waited < pause, wake.load(ordering: .relaxed) == seen, !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                    waited += 100
                }
            }
        }
    }

    /// One step: a recorded move goes on, or the next planned one begins.
    /// Returns whether anything was done.
    func step() async throws(RagError) -> Bool {
        guard let (placement, revision) = try await store.load() else { return false }
        cluster.adopt(placement)
        if let (record, rev) = try await store.moves().first {
            try await mover.drive(record, revision: rev)
            return true
        }
        // Replicas out of sync come back before anything moves.
        if try await ReplicaRecovery(mover: mover).step(placement) { return true }
        if let every = antiEntropyInterval, lastAntiEntropy.withLock({ $0.map { $0.duration(to: .now) >= every } ?? true }) {
            lastAntiEntropy.withLock { $0 = .now }
            let r = await AntiEntropy(mover: mover).pass(placement)
            if r.filled > 0 || !r.dropped.isEmpty { return true }
        }
        var plan = RebalancePlanner.plan(placement)
        guard !plan.isEmpty else { return false }
        // Partitions no node holds yet hold no data: assign them all at once.
        let empty = plan.filter { placement.slots[$0.partition].replicas.isEmpty && placement.slots[$0.partition].joining.isEmpty }
        if !empty.isEmpty {
            let next = placement.next { p in for m in empty { p.slots[m.partition].replicas.append(m.to); p.slots[m.partition].inSync = nil; p.slots[m.partition].syncing = nil } }
            if try await store.publish(next, over: revision, mover: me) {
                cluster.adopt(next)
                logger.info("assigned \(empty.count) empty partition replicas (placement \(next.version))")
            }
            return true
        }
        plan = RebalancePlanner.plan(placement, chunks: try await chunkCounts(placement), limit: 1)
        guard let first = plan.first else { return false }
        return try await mover.start(first, placement: placement, revision: revision)
    }

    /// Chunks per logical partition (summed over collections), from one replica each.
    func chunkCounts(_ placement: Placement) async throws(RagError) -> [Int: Int] {
        var out: [Int: Int] = [:]
        for (i, slot) in placement.slots.enumerated() {
            guard let id = slot.replicas.first, let address = placement.members[id]?.address else { continue }
            let r = try? await mover.call(address, .shardSlot, Ragd_V1_ShardSlotRequest.with { $0.partition = UInt32(i) }, as: Ragd_V1_ShardSlotResponse.self)
            out[i] = r?.entries.reduce(0) { $0 + Int($1.chunks) } ?? 0
        }
        return out
    }
}
