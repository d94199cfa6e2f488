import Foundation
import RagClient
import RagCore
import RagTesting
import RagWire
import Testing

/// The proof that replicas never drift (issue 15): a three-member etcd, two
/// coordinators and three shard nodes with replication 2 (and 3), under
/// writers, readers and random faults (kill -9 and restart of nodes, SIGSTOP
/// and SIGCONT, a coordinator killed, an etcd member restarted). After
/// healing, the checker proves that every acknowledged write is there with
/// its content (or a later unacknowledged one), every replica of every
/// partition is at the same sequence number with the same content, queries
/// equal a single node rebuilt from that state, and no query failed.
///
/// `RAGD_CHAOS_MINUTES` (default 1.5 per replication factor) and
/// `RAGD_CHAOS_SEED` (default random; printed) make long runs: Scripts/chaos.sh.
@Suite(.serialized) struct ChaosTests {
    static let environment = ProcessInfo.processInfo.environment
    static var minutes: Double { Double(environment["RAGD_CHAOS_MINUTES"] ?? "") ?? 1.5 }
    static let seed = UInt64(environment["RAGD_CHAOS_SEED"] ?? "") ?? UInt64.random(in: 1...999_999)
    static let partitions = 8

    @Test(arguments: [2, 3]) func replicasNeverDriftUnderFaults(replication: Int) async throws {
        let seed = Self.seed &+ UInt64(replication)
        let cluster = try await ChaosCluster.launch(nodes: 3, coordinators: 2, replication: replication, partitions: Self.partitions)
        defer { cluster.stop() }
        let admin = cluster.client(0)
        for i in 0..<cluster.nodeCount {
            #expect(await eventually(seconds: 30) { (try? await admin.clusterStatus().nodes.contains { $0.internalAddress == cluster.address(i) }) == true })
            _ = try await admin.clusterChange("add-node", node: cluster.address(i))
        }
        let share = Self.partitions * replication / cluster.nodeCount
        #expect(await eventually(seconds: 90) {
            guard let s = try? await admin.clusterStatus() else { return false }
            return s.unassigned == 0 && s.moves.isEmpty && s.outOfSync == 0 && s.members.count == 3 && s.members.allSatisfy { $0.partitions >= share }
        })
        let run = ChaosRun(cluster: cluster, seed: seed)
        try await run.run(for: .seconds(Self.minutes * 60))
        // Heal: every fault was undone by the injector; wait for every replica to be in sync.
        let healed = await run.healed(within: 120, verify: true)
        #expect(healed, "the cluster did not heal:\n\(cluster.logs())")
        guard healed else { return }

        // 1. Every replica of every partition: same sequence number, digest and documents.
        var compared = 0
        var drifted: [Int] = []
        var stored: [String: String] = [:]  // id -> stored text, from one replica
        for p in 0..<Self.partitions {
            let key = Ragd_V1_ShardKey.with { $0.collection = run.collection; $0.partition = UInt32(p) }
            var states: [(Ragd_V1_ShardCountsResponse, [String: UInt64])] = []
            for i in 0..<cluster.nodeCount {
                let c = cluster.node(i).internalClient(timeout: hangGuard)
                defer { Task { await c.close() } }
                let s = try await c.call(.shardCounts, Ragd_V1_ShardCountsRequest.with { $0.shard = key }, as: Ragd_V1_ShardCountsResponse.self, timeout: hangGuard)
                guard s.seq > 0 || s.documents > 0 else { continue }
                let h = try await c.call(.shardHashes, Ragd_V1_ShardHashesRequest.with { $0.shard = key }, as: Ragd_V1_ShardHashesResponse.self, timeout: hangGuard).hashes
                if states.isEmpty, !h.isEmpty {
                    let docs = try await c.call(.shardFetch, Ragd_V1_ShardFetchRequest.with { $0.shard = key; $0.ids = Array(h.keys) },
                                                as: Ragd_V1_ShardFetchResponse.self, timeout: .seconds(30)).documents
                    for d in docs { stored[d.id] = d.chunks.joined(separator: " ") }
                }
                states.append((s, h))
            }
            compared += states.count
            if states.count != replication || Set(states.map(\.0.seq)).count > 1 || Set(states.map(\.0.digest)).count > 1 || Set(states.map(\.1)).count > 1 {
                drifted.append(p)
            }
            #expect(states.count == replication, "partition \(p): \(states.count) copies")
            #expect(Set(states.map(\.0.seq)).count == 1, "partition \(p): sequence numbers \(states.map(\.0.seq))")
            #expect(Set(states.map(\.0.digest)).count == 1, "partition \(p): digests differ at \(states.map(\.0.seq))")
            #expect(Set(states.map(\.1)).count == 1, "partition \(p): document hashes differ")
        }

        // 2. Every acknowledged write is there (or a later unacknowledged one); deletes stay deleted.
        var lost: [String] = []
        var present: [RagDocument] = []
        for id in run.ids {
            let text = stored[id]
            let revision = text.flatMap { t in t.range(of: "revision ").map { String(t[$0.upperBound...].prefix { $0 != ":" }) } }
            if !run.allowed(id).contains(revision) { lost.append("\(id): \(revision ?? "absent"), allowed \(run.allowed(id))") }
            if let revision { present.append(RagDocument(id: id, text: ChaosRun.text(id: id, revision: revision))) }
        }
        #expect(lost.isEmpty, "\(lost)")

        // 3. Queries equal a single node holding the same documents.
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let single = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--partitions", "\(Self.partitions)"])
        defer { single.kill9() }
        let s = single.client()
        if !present.isEmpty { _ = try await s.index(present, collection: run.collection) }
        var queries = 0
        var differing = 0
        for word in ClusterCorpus.words {
            for mode in [SearchMode.keyword, .hybrid] {
                let a = try await admin.query(word, collection: run.collection, topK: 10, mode: mode, noCache: true)
                let b = try await s.query(word, collection: run.collection, topK: 10, mode: mode, noCache: true)
                let same = a.sources.map(\.chunkID) == b.sources.map(\.chunkID) && a.sources.map(\.score) == b.sources.map(\.score)
                #expect(same, "\(mode) \(word)")
                if !same { differing += 1 }
                queries += 1
            }
        }

        // 4. No query failed (one in-sync replica of every partition was up throughout).
        let counts = run.counts.withLock { $0 }
        #expect(counts.readFailures.isEmpty, "\(counts.readFailures.prefix(5))")
        #expect(counts.unhealed == 0)
        let faults = counts.faults.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        let heal = counts.heals.sorted()
        let pass = lost.isEmpty && drifted.isEmpty && differing == 0 && counts.readFailures.isEmpty && counts.unhealed == 0
        print("chaos verdict: \(pass ? "PASS" : "FAIL") seed \(seed) replication \(replication) "
              + "\(String(format: "%.1f", Self.minutes)) min: writes acknowledged \(counts.acknowledged) (deletes \(counts.deletes) of all), "
              + "not acknowledged \(counts.failed); faults \(counts.values(faults)); replicas compared \(compared) in \(Self.partitions) partitions (drifted \(drifted.count)); "
              + "documents \(present.count); queries \(counts.queries) during, \(queries) compared with a single node (\(differing) differ); lost writes \(lost.count); failed queries \(counts.readFailures.count) (refused while no in-sync replica of a partition was up: \(counts.refusedWithoutInSyncReplica)); "
              + "heal p50 \(String(format: "%.1f", heal.isEmpty ? 0 : heal[heal.count / 2])) s max \(String(format: "%.1f", heal.last ?? 0)) s")
        await s.close()
        await admin.close()
    }
}

extension ChaosRun.Counts {
    fileprivate func values(_ faults: String) -> String { faults.isEmpty ? "none" : faults }
}
