import Foundation
import RagClient
import RagCore
import RagTesting
import RagWire
import Synchronization
import Testing

/// One chaos run against a `ChaosCluster`: writers upsert and delete ids from
/// a known set through both coordinators, readers query through both, and a
/// seeded fault injector kills, pauses and restarts nodes, coordinators and
/// etcd members one at a time, waiting for the cluster to heal in between.
/// Every write's outcome is recorded for the checker.
final class ChaosRun: Sendable {
    let cluster: ChaosCluster
    let seed: UInt64
    let collection = "chaos"
    static let writers = 3
    /// Enough ids that a replica missing one write is rarely mended by a later write of the same id.
    static let idsPerWriter = 150

    /// One write to an id: the revision written (nil: a delete) and whether it was acknowledged.
    struct Op: Sendable {
        var revision: String?
        var acknowledged: Bool
    }

    struct Counts: Sendable {
        var acknowledged = 0
        var failed = 0
        var deletes = 0
        var queries = 0
        var faults: [String: Int] = [:]
        var readFailures: [String] = []
        /// UNAVAILABLE while a node was down or paused and some replica was
        /// out of sync: a partition whose only in-sync replica was that node
        /// may refuse reads (allowed: no in-sync replica of it was up).
        var refusedWithoutInSyncReplica = 0
        var heals: [Double] = []
        var unhealed = 0
    }

    let history = Mutex<[String: [Op]]>([:])
    let counts = Mutex(Counts())
    /// Coordinators killed now: nobody calls them meanwhile.
    let down = Mutex<Set<Int>>([])
    /// A node is killed or paused now.
    let nodeFault = Mutex(false)
    private let clients: [RagClient]

    init(cluster: ChaosCluster, seed: UInt64) {
        self.cluster = cluster
        self.seed = seed
        clients = (0..<cluster.coordinatorCount).map { cluster.client($0, timeout: hangGuard) }
    }

    static func text(id: String, revision: String) -> String {
        let w = ClusterCorpus.words
        let h = Int(StableHash.fnv1a(revision) % UInt64(w.count))
        return "\(id) revision \(revision): \(w[h]) \(w[(h + 3) % w.count]) \(w[(h + 7) % w.count]) and a \(w[(h + 11) % w.count])."
    }

    /// The client of coordinator `preferred`, or of another one while it is down.
    func client(_ preferred: Int) -> (Int, RagClient) {
        let d = down.withLock { $0 }
        let i = (0..<clients.count).map { ($0 + preferred) % clients.count }.first { !d.contains($0) } ?? preferred
        return (i, clients[i])
    }

    func run(for duration: Duration) async throws {
        let end = ContinuousClock.now + duration
        await withTaskGroup(of: Void.self) { group in
            for w in 0..<Self.writers { group.addTask { await self.write(w, until: end) } }
            for r in 0..<2 { group.addTask { await self.read(r, until: end) } }
            group.addTask { await self.inject(until: end) }
        }
    }

    func write(_ w: Int, until end: ContinuousClock.Instant) async {
        var rng = Lcg(seed: seed &* 31 &+ UInt64(w))
        var n = 0
        while ContinuousClock.now < end {
            let id = "w\(w)-\(rng.next() % UInt64(Self.idsPerWriter))"
            n += 1
            let revision = "\(w).\(n)"
            let delete = rng.next() % 5 == 0
            let (_, c) = client(w)
            var ok = true
            do {
                if delete {
                    _ = try await c.delete([id], collection: collection, timeout: .seconds(8))
                } else {
                    _ = try await c.index([RagDocument(id: id, text: Self.text(id: id, revision: revision))], collection: collection, timeout: .seconds(8))
                }
            } catch {
                ok = false
            }
            history.withLock { $0[id, default: []].append(Op(revision: delete ? nil : revision, acknowledged: ok)) }
            counts.withLock {
                if ok { $0.acknowledged += 1 } else { $0.failed += 1 }
                if delete { $0.deletes += 1 }
            }
            if !ok { try? await Task.sleep(for: .milliseconds(100)) }
        }
    }

    func read(_ r: Int, until end: ContinuousClock.Instant) async {
        var rng = Lcg(seed: seed &* 17 &+ UInt64(r))
        while ContinuousClock.now < end {
            let word = ClusterCorpus.words[Int(rng.next() % UInt64(ClusterCorpus.words.count))]
            let (i, c) = client(r)
            do {
                _ = try await c.query(word, collection: collection, topK: 5, mode: rng.next() % 2 == 0 ? .keyword : .hybrid, noCache: true,
                                      timeout: hangGuard)
            } catch {
                // A coordinator killed under the call is not the cluster failing a query.
                if !down.withLock({ $0.contains(i) }), error.code != .notFound {
                    if await noInSyncReplicaUp(error) {
                        counts.withLock { $0.refusedWithoutInSyncReplica += 1 }
                    } else {
                        counts.withLock { $0.readFailures.append("\(error)") }
                    }
                }
            }
            counts.withLock { $0.queries += 1 }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Whether a failed read is the allowed refusal: UNAVAILABLE because no
    /// replica of a partition answered, while a node fault was on and the
    /// placement had replicas out of sync (so that node could have been a
    /// partition's only in-sync replica).
    func noInSyncReplicaUp(_ error: RagError) async -> Bool {
        guard error.code == .unavailable, error.message.contains("no replica answered"), nodeFault.withLock({ $0 }) else { return false }
        for i in 0..<clients.count where !down.withLock({ $0.contains(i) }) {
            if let s = try? await clients[i].clusterStatus(timeout: .seconds(5)) { return s.outOfSync > 0 }
        }
        return false
    }

    func inject(until end: ContinuousClock.Instant) async {
        var rng = Lcg(seed: seed)
        try? await Task.sleep(for: .seconds(2))
        while ContinuousClock.now < end {
            let roll = rng.next() % 100
            let hold = Duration.milliseconds(1000 + Int(rng.next() % 2000))
            var kind = ""
            do {
                switch roll {
                case 0..<35:
                    let i = Int(rng.next() % UInt64(cluster.nodeCount))
                    kind = "kill -9 node"
                    nodeFault.withLock { $0 = true }
                    cluster.killNode(i)
                    try await Task.sleep(for: hold)
                    try await cluster.relaunchNode(i)
                    nodeFault.withLock { $0 = false }
                case 35..<65:
                    let i = Int(rng.next() % UInt64(cluster.nodeCount))
                    kind = "SIGSTOP node"
                    nodeFault.withLock { $0 = true }
                    cluster.node(i).pause()
                    try await Task.sleep(for: hold)
                    cluster.node(i).resume()
                    nodeFault.withLock { $0 = false }
                case 65..<85:
                    let i = Int(rng.next() % UInt64(cluster.coordinatorCount))
                    kind = "kill -9 coordinator"
                    down.withLock { _ = $0.insert(i) }
                    cluster.killCoordinator(i)
                    try await Task.sleep(for: hold)
                    try await cluster.relaunchCoordinator(i)
                    down.withLock { _ = $0.remove(i) }
                default:
                    kind = "restart etcd member"
                    try await cluster.restartEtcd(Int(rng.next() % 3))
                }
            } catch {
                Issue.record("fault \(kind): \(error)")
            }
            counts.withLock { $0.faults[kind, default: 0] += 1 }
            let t = ContinuousClock.now
            if await healed(within: 90) {
                let seconds = Double((ContinuousClock.now - t).components.attoseconds) / 1e18 + Double((ContinuousClock.now - t).components.seconds)
                counts.withLock { $0.heals.append(seconds) }
            } else {
                counts.withLock { $0.unhealed += 1 }
            }
            try? await Task.sleep(for: .milliseconds(500 + Int(rng.next() % 1000)))
        }
    }

    /// Waits until every partition replica is in sync again and nothing
    /// moves; with `verify` (writes stopped), also until `cluster verify`
    /// finds every in-sync copy identical (the anti-entropy pass repairs a
    /// replica left without an unacknowledged write).
    func healed(within seconds: Int, verify: Bool = false) async -> Bool {
        await eventually(seconds: seconds) {
            let c = self.client(0).1
            guard let s = try? await c.clusterStatus(timeout: .seconds(5)), s.outOfSync == 0, s.moves.isEmpty, s.degraded.isEmpty else { return false }
            guard verify else { return true }
            guard let v = try? await c.clusterVerify(collection: self.collection, timeout: .seconds(30)) else { return false }
            return v.mismatchCount == 0 && v.skipped.isEmpty
        }
    }

    /// The states an id may be in at the end: after its last acknowledged
    /// write, or after any write that failed later (it may have been applied).
    /// nil in the set: absent.
    func allowed(_ id: String) -> Set<String?> {
        let ops = history.withLock { $0[id] ?? [] }
        let last = ops.lastIndex { $0.acknowledged }
        var out: Set<String?> = [last.map { ops[$0].revision } ?? nil]
        for op in ops[((last ?? -1) + 1)...] where !op.acknowledged { out.insert(op.revision) }
        return out
    }

    var ids: [String] { (0..<Self.writers).flatMap { w in (0..<Self.idsPerWriter).map { "w\(w)-\($0)" } } }
}
