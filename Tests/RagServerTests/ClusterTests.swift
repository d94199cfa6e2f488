import Foundation
import RagClient
import RagCore
import RagTesting
import RagWire
import Testing

/// A corpus big enough to spread over shards, with metadata to filter on.
enum ClusterCorpus {
    static let words = ["index", "shard", "replica", "vector", "query", "token", "cache", "latency", "merge", "filter",
                        "coordinator", "deadline", "protocol", "frame", "buffer", "socket", "commit", "journal", "page", "tree"]

    static var documents: [RagDocument] {
        var g = Lcg(seed: 7)
        var docs = Fixtures.documents
        for i in 0..<240 {
            let text = (0..<40).map { _ in words[Int(g.next() % UInt64(words.count))] }.joined(separator: " ")
                + ". Document \(i) closes with item\(i)."
            docs.append(RagDocument(id: "doc-\(String(format: "%03d", i))", text: text,
                                    metadata: ["n": .number(Double(i % 10)), "group": .string(i % 3 == 0 ? "a" : "b"), "even": .bool(i % 2 == 0)]))
        }
        return docs
    }

    static var queries: [(String, MetadataFilter?)] {
        var g = Lcg(seed: 11)
        var out: [(String, MetadataFilter?)] = Fixtures.questions.map { ($0.0, nil) }
        let filters: [MetadataFilter?] = [nil, .compare(key: "group", op: .eq, values: [.string("a")]),
                                          .and([.compare(key: "n", op: .gte, values: [.number(5)]), .compare(key: "even", op: .eq, values: [.bool(true)])])]
        for i in 0..<93 {
            let q = (0..<3).map { _ in words[Int(g.next() % UInt64(words.count))] }.joined(separator: " ")
            out.append((q, filters[i % 3]))
        }
        return out
    }
}

struct Lcg {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state >> 33
    }
}

@Suite(.serialized) struct ClusterTests {
    /// Asks both servers every query in every mode: the same chunks, scores,
    /// partitions and answers. Returns how many were compared.
    static func expectSameAnswers(_ a: RagClient, _ b: RagClient, queries: [(String, MetadataFilter?)]) async throws -> Int {
        var compared = 0
        for mode in SearchMode.allCases {
            for (q, filter) in queries {
                let x = try await a.query(q, collection: "kb", topK: 10, filter: filter, mode: mode, noCache: true)
                let y = try await b.query(q, collection: "kb", topK: 10, filter: filter, mode: mode, noCache: true)
                #expect(x.sources.map(\.chunkID) == y.sources.map(\.chunkID), "\(mode) \(q)")
                #expect(x.sources.map(\.score) == y.sources.map(\.score), "\(mode) \(q)")
                #expect(x.sources.map(\.partition) == y.sources.map(\.partition))
                // Texts are read from the nodes after the merge (ShardTexts).
                #expect(x.sources.map(\.content) == y.sources.map(\.content) && x.sources.allSatisfy { !$0.content.isEmpty })
                #expect(x.answer == y.answer)
                compared += 1
            }
        }
        return compared
    }

    @Test func clusterResultsEqualSingleNodeResults() async throws {
        let cluster = try await LocalCluster.launch(shards: 3, replicas: 2)
        defer { cluster.stop() }
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let single = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--partitions", "3"])
        let c = cluster.client()
        let s = single.client()
        let docs = ClusterCorpus.documents
        for start in stride(from: 0, to: docs.count, by: 50) {
            let batch = Array(docs[start..<min(start + 50, docs.count)])
            let a = try await c.index(batch, collection: "kb")
            let b = try await s.index(batch, collection: "kb")
            #expect(a.chunks == b.chunks)
        }
        let compared = try await Self.expectSameAnswers(c, s, queries: ClusterCorpus.queries)
        #expect(compared == 300)
        // Stats aggregate the shards; every shard holds some documents.
        let stats = try await c.stats(collection: "kb")
        #expect(stats.collections.first?.documents == UInt64(docs.count))
        #expect(stats.collections.first?.partitions.allSatisfy { $0.documents > 0 } == true)
        // Read-your-writes through the coordinator, then delete.
        _ = try await c.index([RagDocument(id: "fresh", text: "A brand new zeppelin document.")], collection: "kb")
        #expect(try await c.query("zeppelin", collection: "kb", topK: 1, mode: .keyword).sources.first?.documentID == "fresh")
        #expect(try await c.delete(["fresh"], collection: "kb").deleted == 1)
        #expect(try await c.query("zeppelin", collection: "kb", topK: 1, mode: .keyword).sources.isEmpty)
        let health = try await c.health()
        #expect(health.role == "coordinator")
        #expect(health.replicas.count == 6 && health.replicas.allSatisfy { $0.state == "up" })
        await c.close()
        await s.close()
    }

    /// Replication with etcd: a replica dies under queries (none fails),
    /// writes go on without it (it is taken out of the in-sync set first),
    /// a partition with no replica left is UNAVAILABLE or partial, and the
    /// dead replica returns, catches up from the primary's log and serves
    /// what it missed.
    @Test func failoverPartialResultsAndCatchUp() async throws {
        let etcd = try await EtcdProcess.launch()
        defer { etcd.stop() }
        let cluster = try await LocalCluster.launch(shards: 3, replicas: 2, etcd: etcd.endpoint)
        defer { cluster.stop() }
        let c = cluster.client(timeout: hangGuard)
        _ = try await c.index(ClusterCorpus.documents, collection: "kb")
        let baseline = try await c.query("replica shard merge", collection: "kb", topK: 10, noCache: true)
        let partitions = LocalCluster.testPartitions
        func onShard(_ s: Int) -> [Int] { (0..<partitions).filter { $0 % 3 == s } }

        // One replica of shard 0 dies in the middle of a stream of queries: none fails.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for i in 0..<60 {
                    let r = try await c.query("replica shard merge", collection: "kb", topK: 10, noCache: true)
                    #expect(r.sources.map(\.chunkID) == baseline.sources.map(\.chunkID), "query \(i)")
                }
            }
            try await Task.sleep(for: .milliseconds(50))
            cluster.kill(shard: 0, replica: 0)
            try await group.waitForAll()
        }
        // Writes go on: the dead replica leaves the in-sync set of the partitions written.
        let missed = ClusterCorpus.documents.filter { onShard(0).contains(StableHash.partition(collection: "kb", documentID: $0.id, count: partitions)) }.prefix(3)
        _ = try await c.delete(missed.map(\.id), collection: "kb")
        let quokka = (0..<1000).map { "while-down-\($0)" }.first { StableHash.partition(collection: "kb", documentID: $0, count: partitions) % 3 == 0 }!
        _ = try await c.index([RagDocument(id: quokka, text: "Written while a replica of shard zero was down: quokka.")], collection: "kb")
        let h = try await c.health()
        #expect(h.replicas.contains { $0.address.hasSuffix(":\(cluster.nodes[0][0].internalPort)") && $0.state != "up" && $0.pendingWrites > 0 }, "\(h.replicas)")

        // Both replicas of shard 1 down: UNAVAILABLE, or a partial answer on request.
        cluster.kill(shard: 1, replica: 0)
        cluster.kill(shard: 1, replica: 1)
        do {
            _ = try await c.query("replica shard merge", collection: "kb", noCache: true)
            Issue.record("expected UNAVAILABLE")
        } catch {
            #expect(error.code == .unavailable)
        }
        let partial = try await c.query("replica shard merge", collection: "kb", topK: 10, noCache: true, allowPartial: true)
        #expect(partial.missingShards == onShard(1).map(UInt32.init))
        #expect(!partial.sources.isEmpty && partial.sources.allSatisfy { !onShard(1).contains(Int($0.partition)) })
        #expect(try await c.health().status == "SERVING")

        // The dead replica of shard 0 returns, catches up from the primary's log, and is read again.
        try await cluster.relaunch(shard: 0, replica: 0)
        let caughtUp = await eventually(seconds: 30) {
            (try? await c.health().replicas.contains { $0.address.hasSuffix(":\(cluster.nodes[0][0].internalPort)") && $0.state == "up" && $0.pendingWrites == 0 }) == true
        }
        #expect(caughtUp, "\(cluster.coordinator.log.split(separator: "\n").filter { $0.contains("partition") || $0.contains("rebalancer") }.suffix(20).joined(separator: "\n"))")
        for p in onShard(0) {
            let key = Ragd_V1_ShardKey.with { $0.collection = "kb"; $0.partition = UInt32(p) }
            var states: [Ragd_V1_ShardCountsResponse] = []
            var hashes: [[String: UInt64]] = []
            for r in 0..<2 {
                let client = cluster.nodes[0][r].internalClient()
                states.append(try await client.call(.shardCounts, Ragd_V1_ShardCountsRequest.with { $0.shard = key }, as: Ragd_V1_ShardCountsResponse.self, timeout: hangGuard))
                hashes.append(try await client.call(.shardHashes, Ragd_V1_ShardHashesRequest.with { $0.shard = key }, as: Ragd_V1_ShardHashesResponse.self, timeout: hangGuard).hashes)
                await client.close()
            }
            #expect(states[0].seq == states[1].seq && states[0].seq > 0 && states[0].digest == states[1].digest, "partition \(p)")
            #expect(hashes[0] == hashes[1])
            #expect(missed.allSatisfy { hashes[0][$0.id] == nil })
        }
        // With the other replica gone, the returned one answers alone.
        cluster.kill(shard: 0, replica: 1)
        let r = try await c.query("quokka", collection: "kb", topK: 1, mode: .keyword, noCache: true, allowPartial: true)
        #expect(r.sources.first?.documentID == quokka)

        // A deadline too short for the fan-out: DEADLINE_EXCEEDED, and the coordinator carries on.
        do {
            _ = try await c.query("replica shard merge", collection: "kb", noCache: true, timeout: .milliseconds(1))
            Issue.record("expected DEADLINE_EXCEEDED")
        } catch {
            #expect(error.code == .deadlineExceeded)
        }
        await c.close()
    }

    /// A write whose embeddings take it past the frame limit goes to the shards
    /// as ordered sub-writes instead of failing on every replica and wedging
    /// the partition behind a hint that can never be delivered; a single
    /// document that cannot fit is refused before any replica sees it, and
    /// nothing is hinted for it.
    @Test func writesLargerThanAFrameAreSplitOrRefused() async throws {
        let limit = ["--max-frame-size", "1048576"]
        let cluster = try await LocalCluster.launch(shards: 1, replicas: 2, coordinatorArguments: limit, shardArguments: limit)
        defer { cluster.stop() }
        let c = cluster.client()
        var g = Lcg(seed: 5)
        let docs = (0..<24).map { i in
            RagDocument(id: "big-\(i)", text: (0..<5000).map { _ in ClusterCorpus.words[Int(g.next() % 20)] }.joined(separator: " ") + " item\(i).")
        }
        // ~0.9 MB of text in one request: ~2.5 MB to the shard with the vectors.
        let summary = try await c.index(docs, collection: "kb")
        #expect(summary.documents == 24)
        #expect(try await c.stats(collection: "kb").collections.first?.documents == 24)
        let whole = RagDocument(id: "too-big", text: (0..<120_000).map { _ in ClusterCorpus.words[Int(g.next() % 20)] }.joined(separator: " "))
        do {
            _ = try await c.index([whole], collection: "kb", timeout: .seconds(120))
            Issue.record("expected INVALID_ARGUMENT")
        } catch {
            #expect(error.code == .invalidArgument && error.message.contains("split the document"), "\(error)")
        }
        // Nothing left behind: both replicas current and identical, and writes go on.
        let health = try await c.health()
        #expect(health.replicas.count == 2 && health.replicas.allSatisfy { $0.state == "up" && $0.pendingWrites == 0 }, "\(health.replicas)")
        _ = try await c.index([RagDocument(id: "after", text: "a small document after the refused one")], collection: "kb")
        let key = Ragd_V1_ShardKey.with { $0.collection = "kb"; $0.partition = 0 }
        var hashes: [[String: UInt64]] = []
        for r in 0..<2 {
            let client = cluster.nodes[0][r].internalClient()
            hashes.append(try await client.call(.shardHashes, Ragd_V1_ShardHashesRequest.with { $0.shard = key }, as: Ragd_V1_ShardHashesResponse.self,
                                                timeout: hangGuard).hashes)
            await client.close()
        }
        #expect(hashes[0] == hashes[1] && hashes[0].count == 25 && hashes[0]["too-big"] == nil)
        await c.close()
    }

    /// `ragctl cluster verify` compares every replica document by document: a
    /// healthy cluster agrees; a copy changed behind the coordinator's back on
    /// one replica is named, and the command exits 1.
    @Test func verifyFindsReplicasThatDiffer() async throws {
        let cluster = try await LocalCluster.launch(shards: 2, replicas: 2)
        defer { cluster.stop() }
        let c = cluster.client()
        let docs = Array(ClusterCorpus.documents.prefix(60))
        _ = try await c.index(docs, collection: "kb")
        let clean = try await c.clusterVerify()
        #expect(clean.mismatchCount == 0 && clean.documents == 60 && clean.partitions == 2 && clean.replicas == 4 && clean.skipped.isEmpty, "\(clean)")
        // Drift: one replica's copy of one document changes behind the coordinator.
        let victim = docs[7].id
        let p = Int(StableHash.partition(collection: "kb", documentID: victim, count: 2))
        let tamper = Ragd_V1_ShardWriteRequest.with {
            $0.shard = Ragd_V1_ShardKey.with { $0.collection = "kb"; $0.partition = UInt32(p); $0.dimension = 384 }
            $0.upserts = [Ragd_V1_StoredDocument.with {
                $0.id = victim
                $0.contentHash = 42
                $0.chunks = ["tampered"]
                $0.embeddings = Data(count: 384 * 4)
            }]
        }
        let node = cluster.nodes[p][1].internalClient()
        _ = try await node.call(.shardWrite, tamper, as: Ragd_V1_ShardWriteResponse.self, timeout: hangGuard)
        await node.close()
        let drift = try await c.clusterVerify(collection: "kb")
        #expect(drift.mismatchCount == 1 && drift.mismatches.first?.documentID == victim && drift.mismatches.first?.partition == UInt32(p))
        #expect(drift.mismatches.first?.hashes.values.contains(42) == true)
        let ctl = try await run([CLIIndexTests.ragctl, "cluster", "verify", "--server", "127.0.0.1:\(cluster.coordinator.port)"])
        #expect(ctl.status == 1 && ctl.output.contains("1 documents differ") && ctl.output.contains(victim), "\(ctl.output) \(ctl.errors)")
        #expect(await code { _ = try await c.clusterVerify(collection: "nope") } == .notFound)
        await c.close()
    }
}
