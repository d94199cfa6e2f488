import Foundation
import RagClient
import RagCore
import RagServer
import RagTesting
import RagWire
import Synchronization
import Testing

/// #14: logical partitions in a versioned placement, nodes added, drained and
/// removed online while queries and writes run, and moves that survive the
/// death of the coordinator running them.
@Suite(.serialized) struct RebalanceTests {
    static let partitions = 16

    /// Queries whose answers must stay exactly a single node's, through any move.
    static func probes() -> [(String, MetadataFilter?, SearchMode)] {
        Array(ClusterCorpus.queries.prefix(12)).enumerated().map { i, q in (q.0, q.1, SearchMode.allCases[i % 3]) }
    }

    struct Answer: Equatable { var ids: [String]; var scores: [Double]; var partitions: [UInt32] }

    static func answers(_ c: RagClient, collection: String) async throws -> [Answer] {
        var out: [Answer] = []
        for (q, filter, mode) in probes() {
            let r = try await c.query(q, collection: collection, topK: 10, filter: filter, mode: mode, noCache: true)
            out.append(Answer(ids: r.sources.map(\.chunkID), scores: r.sources.map(\.score), partitions: r.sources.map(\.partition)))
        }
        return out
    }

    func status(_ c: RagClient) async throws -> ClusterStatus { try await c.clusterStatus(timeout: hangGuard) }

    /// Every active member within one partition of the others, nothing moving.
    func balanced(_ s: ClusterStatus, members: Int) -> Bool {
        let loads = s.members.filter { $0.state == "active" }.map(\.partitions)
        return s.members.count == members && s.moves.isEmpty && s.unassigned == 0 && loads.count == members
            && (loads.max() ?? 0) - (loads.min() ?? 0) <= 1 && loads.reduce(0, +) == UInt32(Self.partitions) * s.replicationFactor
    }

    /// Continuous queries (checked against the single node's answers) and
    /// writes (every acknowledged one recorded) until stopped.
    final class Load: Sendable {
        let acked = Mutex<[String]>([])
        let queries = Mutex((ok: 0, wrong: 0, failed: [String]()))
        let writeFailures = Mutex<[String]>([])
        let stop = Atomic<Bool>(false)

        func run(reader: RagClient, writer: RagClient, expected: [Answer]) async {
            async let q: Void = {
                while !self.stop.load(ordering: .relaxed) {
                    do {
                        let got = try await RebalanceTests.answers(reader, collection: "stable")
                        self.queries.withLock { got == expected ? ($0.ok += 1) : ($0.wrong += 1) }
                    } catch {
                        self.queries.withLock { $0.failed.append("\(error)") }
                    }
                }
            }()
            async let w: Void = {
                var i = 0
                while !self.stop.load(ordering: .relaxed) {
                    let id = String(format: "live-%04d", i)
                    let text = "Live document \(i) about " + ClusterCorpus.words[i % ClusterCorpus.words.count] + " and item\(i)."
                    do {
                        _ = try await writer.index([RagDocument(id: id, text: text)], collection: "live")
                        self.acked.withLock { $0.append(id) }
                    } catch {
                        self.writeFailures.withLock { $0.append("\(id): \(error)") }
                    }
                    i += 1
                }
            }()
            _ = await (q, w)
        }
    }

    /// With one replica per partition (3 nodes), and with two (4 nodes: moves
    /// then run beside a second replica that keeps serving and taking writes).
    @Test(arguments: [1, 2]) func nodeAddedDrainedAndRemovedUnderLoad(replicas: Int) async throws {
        let shards = replicas == 1 ? 3 : 2, nodes = shards * replicas
        let etcd = try await EtcdProcess.launch()
        defer { etcd.stop() }
        let cluster = try await LocalCluster.launch(shards: shards, replicas: replicas, etcd: etcd.endpoint,
                                                    coordinatorArguments: ["--logical-partitions", "\(Self.partitions)"])
        defer { cluster.stop() }
        let b = try await cluster.launchCoordinator("coord-b")
        defer { b.kill9() }
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let single = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--partitions", "\(Self.partitions)"])
        defer { single.kill9() }
        let ca = cluster.client(), cb = b.client(), s = single.client()
        let docs = ClusterCorpus.documents
        for start in stride(from: 0, to: docs.count, by: 60) {
            let batch = Array(docs[start..<min(start + 60, docs.count)])
            _ = try await ca.index(batch, collection: "stable")
            _ = try await s.index(batch, collection: "stable")
        }
        let expected = try await Self.answers(s, collection: "stable")
        #expect(try await Self.answers(cb, collection: "stable") == expected)
        let initial = try await status(ca)
        #expect(initial.shards == UInt32(Self.partitions) && initial.members.count == nodes && initial.moves.isEmpty)
        #expect(initial.replicationFactor == UInt32(replicas))

        // Bad input first: nothing changes.
        #expect(await code { _ = try await ca.clusterChange("add-node", node: "no-such-node") } == .failedPrecondition)
        #expect(await code { _ = try await ca.clusterChange("drain-node", node: "no-such-node") } == .invalidArgument)
        #expect(await code { _ = try await ca.clusterChange("explode") } == .invalidArgument)
        let member0 = initial.members[0].id
        #expect(await code { _ = try await ca.clusterChange("remove-node", node: member0) } == .failedPrecondition)

        // A fourth node joins under continuous queries and writes.
        let fourth = try await cluster.launchShardNode("shard-new")
        let newAddress = "127.0.0.1:\(fourth.internalPort)"
        #expect(await eventually(seconds: 20) { (try? await status(ca).nodes.contains { $0.internalAddress == newAddress }) == true })
        let load = Load()
        let running = Task { await load.run(reader: cb, writer: ca, expected: expected) }
        let ctl = try await run([CLIIndexTests.ragctl, "cluster", "add-node", newAddress, "--server", "127.0.0.1:\(cluster.coordinator.port)"])
        #expect(ctl.status == 0 && ctl.output.contains("added"), "\(ctl.output) \(ctl.errors)")
        #expect(await eventually(seconds: 90) { (try? await balanced(status(ca), members: nodes + 1)) == true })
        let afterAdd = try await status(ca)
        #expect(afterAdd.members.first { $0.address == newAddress }?.partitions ?? 0 >= 3)
        #expect(afterAdd.placementVersion > initial.placementVersion)
        try await Task.sleep(for: .milliseconds(300))

        // It is drained and removed the same way.
        let newID = afterAdd.members.first { $0.address == newAddress }!.id
        _ = try await cb.clusterChange("drain-node", node: newID)
        #expect(await eventually(seconds: 90) {
            guard let st = try? await status(ca) else { return false }
            return st.moves.isEmpty && st.members.first { $0.id == newID }?.partitions == 0
        })
        load.stop.store(true, ordering: .relaxed)
        await running.value
        _ = try await ca.clusterChange("remove-node", node: newID)
        #expect(await eventually(seconds: 60) { (try? await balanced(status(cb), members: nodes)) == true })

        // Every query answered, each exactly as the single node answers.
        let q = load.queries.withLock { $0 }
        print("rebalance load (replication \(replicas)): \(q.ok) query rounds right, \(load.acked.withLock { $0.count }) writes acknowledged, placement \(initial.placementVersion) → \(afterAdd.placementVersion)")
        #expect(q.ok > 0 && q.wrong == 0 && q.failed.isEmpty, "\(q.ok) right, \(q.wrong) wrong, failures: \(q.failed.prefix(3))")
        #expect(load.writeFailures.withLock { $0 }.isEmpty, "\(load.writeFailures.withLock { $0.prefix(3) })")
        // Every acknowledged write is there, and the live collection answers as a
        // single node holding the same documents does.
        let acked = load.acked.withLock { $0 }
        #expect(acked.count > 10)
        let liveStats = try await ca.stats(collection: "live").collections.first
        #expect(liveStats?.documents == UInt64(acked.count))
        for id in acked.shuffled().prefix(25) {
            let r = try await cb.query("Live document \(id.dropFirst(5).drop { $0 == "0" })", collection: "live", topK: 50, mode: .keyword, noCache: true)
            #expect(r.sources.contains { $0.documentID == id }, "\(id) lost")
        }
        for start in stride(from: 0, to: acked.count, by: 100) {
            let ids = acked[start..<min(start + 100, acked.count)]
            _ = try await s.index(ids.map { id in
                let i = Int(id.dropFirst(5))!
                return RagDocument(id: id, text: "Live document \(i) about " + ClusterCorpus.words[i % ClusterCorpus.words.count] + " and item\(i).")
            }, collection: "live")
        }
        for (q, _, mode) in Self.probes().prefix(6) {
            let x = try await ca.query(q, collection: "live", topK: 10, mode: mode, noCache: true)
            let y = try await s.query(q, collection: "live", topK: 10, mode: mode, noCache: true)
            #expect(x.sources.map(\.chunkID) == y.sources.map(\.chunkID) && x.sources.map(\.score) == y.sources.map(\.score))
        }
        #expect(try await Self.answers(ca, collection: "stable") == expected)
        // The removed node's copies are gone from its disk.
        let leftover = (try? FileManager.default.subpathsOfDirectory(atPath: fourth.dataDirectory + "/collections"))?.filter { $0.hasSuffix(".sqlite") } ?? []
        #expect(leftover.isEmpty, "\(leftover)")
        let st = try await run([CLIIndexTests.ragctl, "cluster", "status", "--server", "127.0.0.1:\(b.port)"])
        #expect(st.status == 0 && st.output.contains("no moves in progress") && !st.output.contains(newAddress), "\(st.output)")
        for c in [ca, cb, s] { await c.close() }
    }

    /// The mover is killed with SIGKILL in the middle of a throttled copy; the
    /// coordinator restarted on its data directory takes the mover's lease
    /// again and finishes the move from its recorded cursor. Nothing is lost.
    @Test func moveSurvivesTheMoversDeath() async throws {
        let etcd = try await EtcdProcess.launch()
        defer { etcd.stop() }
        let cluster = try await LocalCluster.launch(shards: 2, replicas: 1, etcd: etcd.endpoint, coordinatorArguments: ["--logical-partitions", "4"])
        defer { cluster.stop() }
        let ca = cluster.client()
        let docs = try await Self.fillBig(ca, prefix: "m")
        let before = try await Self.answers(ca, collection: "big")
        // ~300 documents (two copy pages) per partition at ~200 kB/s: a few seconds per move.
        _ = try await ca.clusterChange("rebalance", maxBytesPerSecond: 200_000)
        let third = try await cluster.launchShardNode("shard-third")
        let address = "127.0.0.1:\(third.internalPort)"
        #expect(await eventually(seconds: 20) { (try? await status(ca).nodes.contains { $0.internalAddress == address }) == true })
        _ = try await ca.clusterChange("add-node", node: address)
        // Wait for a copy under way, then kill the mover.
        var copied: UInt64 = 0
        #expect(await eventually(seconds: 30) {
            guard let m = try? await status(ca).moves.first, m.phase == "copying", m.copiedDocuments > 0 else { return false }
            copied = m.copiedDocuments
            return true
        })
        await ca.close()
        cluster.coordinator.kill9()
        let restarted = try await RagdProcess.launch(dataDirectory: cluster.coordinator.dataDirectory, port: cluster.coordinator.port,
                                                     extraArguments: ["--role", "coordinator", "--etcd", etcd.endpoint] + TestCertificates.shared.clusterFlags)
        defer { restarted.kill9() }
        let c = restarted.client()
        // The record outlived the mover: the restarted coordinator resumes it.
        let resumed = try await status(c).moves.first
        #expect(resumed != nil && resumed!.copiedDocuments >= copied, "the move record should survive: \(String(describing: resumed))")
        _ = try await c.clusterChange("rebalance", maxBytesPerSecond: 50_000_000)
        #expect(await eventually(seconds: 90) { (try? await balanced(status(c), members: 3, total: 4)) == true })
        #expect(try await c.stats(collection: "big").collections.first?.documents == UInt64(docs.count))
        #expect(try await Self.answers(c, collection: "big") == before)
        await c.close()
    }

    /// The node receiving a partition is killed with SIGKILL mid-copy while
    /// writes go on, then restarted: writes it missed undo the move (never
    /// acknowledged without it), the copy is made again, the cluster ends
    /// balanced, and every acknowledged write is there.
    @Test func moveSurvivesTheTargetsDeath() async throws {
        let etcd = try await EtcdProcess.launch()
        defer { etcd.stop() }
        let cluster = try await LocalCluster.launch(shards: 2, replicas: 1, etcd: etcd.endpoint, coordinatorArguments: ["--logical-partitions", "4"])
        defer { cluster.stop() }
        let c = cluster.client()
        let docs = try await Self.fillBig(c, prefix: "t")
        _ = try await c.clusterChange("rebalance", maxBytesPerSecond: 200_000)
        var third = try await cluster.launchShardNode("shard-third")
        let address = "127.0.0.1:\(third.internalPort)"
        #expect(await eventually(seconds: 20) { (try? await status(c).nodes.contains { $0.internalAddress == address }) == true })
        _ = try await c.clusterChange("add-node", node: address)
        #expect(await eventually(seconds: 30) {
            guard let m = try? await status(c).moves.first else { return false }
            return m.phase == "copying" && m.copiedDocuments > 0
        })
        third.kill9()
        // Writes while it is down: each either reaches every node of its
        // partition or undoes the move first; none is lost.
        var acked: [String] = []
        for i in 0..<40 {
            let id = "during-\(i)"
            if (try? await c.index([RagDocument(id: id, text: "written while the target was down, number \(i)")], collection: "big")) != nil { acked.append(id) }
        }
        #expect(acked.count == 40, "writes to partitions whose current replica is up must succeed")
        third = try await RagdProcess.launch(dataDirectory: third.dataDirectory, port: third.port,
                                             extraArguments: LocalCluster.shardArguments(internalPort: third.internalPort, etcd: etcd.endpoint))
        defer { third.kill9() }
        _ = try await c.clusterChange("rebalance", maxBytesPerSecond: 50_000_000)
        #expect(await eventually(seconds: 90) { (try? await balanced(status(c), members: 3, total: 4)) == true })
        #expect(try await c.stats(collection: "big").collections.first?.documents == UInt64(docs.count + acked.count))
        for id in acked {
            let r = try await c.query("written while the target was down number \(id.dropFirst(7))", collection: "big", topK: 40, mode: .keyword, noCache: true)
            #expect(r.sources.contains { $0.documentID == id }, "\(id) lost")
        }
        #expect(try await c.clusterVerify().mismatchCount == 0)
        // (40 writes over 4 partitions: some reached the moving one while its target was down.)
        #expect(cluster.coordinator.log.contains("undone"), "the move should have been undone and made again")
        await c.close()
    }

    /// 1,200 documents of 60 words in collection "big": ~300 per partition of 4,
    /// two copy pages each, so a throttled move lasts a few seconds.
    static func fillBig(_ c: RagClient, prefix: String) async throws -> [RagDocument] {
        let docs = (0..<1200).map { i in
            RagDocument(id: String(format: "\(prefix)-%04d", i), text: (0..<60).map { ClusterCorpus.words[($0 * 7 + i) % 20] }.joined(separator: " ") + " item\(i).")
        }
        for start in stride(from: 0, to: docs.count, by: 200) { _ = try await c.index(Array(docs[start..<start + 200]), collection: "big") }
        return docs
    }

    func balanced(_ s: ClusterStatus, members: Int, total: Int) -> Bool {
        let loads = s.members.map(\.partitions)
        return s.members.count == members && s.moves.isEmpty && (loads.max() ?? 0) - (loads.min() ?? 0) <= 1 && loads.reduce(0, +) == UInt32(total)
    }
}

/// The planner alone, over many shapes of cluster: its moves always end
/// balanced (within one), empty draining nodes, and never put two replicas of
/// one partition on a node.
@Suite struct RebalancePlannerTests {
    @Test func plansAlwaysEndBalanced() {
        var g = Lcg(seed: 3)
        for _ in 0..<200 {
            let partitions = 1 + Int(g.next() % 80), nodes = 1 + Int(g.next() % 7)
            let replication = 1 + Int(g.next() % UInt64(min(3, nodes)))
            var p = Placement(partitions: partitions, replication: replication)
            for n in 0..<nodes { p.members["n\(n)"] = Placement.Member(address: "10.0.0.\(n):7201", state: "active") }
            // A random start: some partitions on random distinct nodes, some short of replicas.
            for i in 0..<partitions {
                let count = Int(g.next() % UInt64(replication + 1))
                var ids = Set<String>()
                while ids.count < count { ids.insert("n\(g.next() % UInt64(nodes))") }
                p.slots[i].replicas = ids.sorted()
            }
            let draining = nodes > replication && g.next() % 3 == 0 ? "n\(g.next() % UInt64(nodes))" : nil
            if let d = draining { p.members[d]?.state = "draining" }
            let chunks = Dictionary(uniqueKeysWithValues: (0..<partitions).map { ($0, Int(g.next() % 1000)) })
            var after = p
            for m in RebalancePlanner.plan(p, chunks: chunks) {
                var s = after.slots[m.partition]
                #expect(!s.replicas.contains(m.to), "a partition twice on \(m.to)")
                if let from = m.from { #expect(s.replicas.contains(from)); s.replicas.removeAll { $0 == from } }
                s.replicas.append(m.to)
                after.slots[m.partition] = s
            }
            let active = after.members.filter { $0.value.state == "active" }.keys
            let load = after.load
            let loads = active.map { load[$0] ?? 0 }
            #expect((loads.max() ?? 0) - (loads.min() ?? 0) <= 1, "\(partitions) partitions × \(replication) over \(nodes) nodes: \(load)")
            #expect(after.slots.allSatisfy { $0.replicas.count == replication && Set($0.replicas).count == replication })
            if let d = draining { #expect(load[d] == 0) }
            #expect(RebalancePlanner.plan(after, chunks: chunks).isEmpty, "a second plan should find nothing to do")
        }
    }
}
