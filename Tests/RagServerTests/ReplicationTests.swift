import Foundation
import RagClient
import RagCore
@testable import RagServer
import RagStore
import RagTesting
import RagWire
import Testing

/// The replication protocol against real processes: the order of entries on
/// one node, primary failover, recovery by the log and by a copy, and two
/// coordinators writing one id at once.
@Suite(.serialized) struct ReplicationTests {
    static func key(_ collection: String, _ p: Int) -> Ragd_V1_ShardKey {
        Ragd_V1_ShardKey.with { $0.collection = collection; $0.partition = UInt32(p); $0.dimension = 4 }
    }

    static func entry(_ id: String, seq: UInt64, version: UInt64, sequence: Bool = false, vectors: Int = 1) -> Ragd_V1_ShardWriteRequest {
        Ragd_V1_ShardWriteRequest.with {
            $0.shard = key("kb", 0)
            $0.upserts = [Ragd_V1_StoredDocument.with {
                $0.id = id
                $0.contentHash = StableHash.fnv1a(id)
                $0.chunks = ["text of \(id)"]
                $0.embeddings = Data(repeating: 0, count: 16 * vectors)
            }]
            $0.sequence = sequence
            $0.seq = seq
            $0.entryVersion = version
        }
    }

    static func state(_ c: RagClient, _ collection: String = "kb", _ p: Int = 0) async throws -> Ragd_V1_ShardCountsResponse {
        try await c.call(.shardCounts, Ragd_V1_ShardCountsRequest.with { $0.shard = key(collection, p) }, as: Ragd_V1_ShardCountsResponse.self, timeout: hangGuard)
    }

    /// One node: entries apply strictly in order; a gap, a contradicting entry
    /// and a write the partition refuses change nothing.
    @Test func aReplicaAppliesEntriesStrictlyInOrder() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let node = try await RagdProcess.launch(dataDirectory: dir, extraArguments: LocalCluster.shardArguments())
        defer { node.kill9() }
        let c = node.internalClient()
        func write(_ r: Ragd_V1_ShardWriteRequest) async throws(RagError) -> Ragd_V1_ShardWriteResponse {
            try await c.call(.shardWrite, r, as: Ragd_V1_ShardWriteResponse.self, timeout: hangGuard)
        }
        #expect(try await write(Self.entry("a", seq: 1, version: 3)).seq == 1)
        // Skips ahead: refused with what was applied, so the sender sends entry 2 first.
        let gap = await code { _ = try await write(Self.entry("c", seq: 3, version: 3)) }
        #expect(gap == .aborted)
        do { _ = try await write(Self.entry("c", seq: 3, version: 3)) } catch {
            #expect(Replication.gapApplied(error) == 1, "\(error)")
        }
        // The same entry again (a retry) is acknowledged; another entry under that number is divergent.
        #expect(try await write(Self.entry("a", seq: 1, version: 3)).seq == 1)
        #expect(await code { _ = try await write(Self.entry("x", seq: 1, version: 4)) } == .failedPrecondition)
        // As a primary: the next number, at a version not below the last entry's.
        #expect(try await write(Self.entry("b", seq: 0, version: 0, sequence: true).withVersion(3)).seq == 2)
        #expect(await code { _ = try await write(Self.entry("old", seq: 0, version: 0, sequence: true).withVersion(2)) } == .aborted)
        // A write the partition refuses (chunks and vectors disagree) is not logged.
        #expect(await code { _ = try await write(Self.entry("bad", seq: 0, version: 0, sequence: true, vectors: 2).withVersion(3)) } == .invalidArgument)
        let s = try await Self.state(c)
        #expect(s.seq == 2 && s.seqVersion == 3 && s.documents == 2)
        // The log holds both entries, in order, for a replica that catches up.
        let log = try await c.call(.shardLog, Ragd_V1_ShardLogRequest.with { $0.shard = Self.key("kb", 0); $0.after = 0 }, as: Ragd_V1_ShardLogResponse.self,
                                   timeout: hangGuard)
        #expect(log.entries.map(\.seq) == [1, 2] && log.head == 2 && !log.truncated)
        // Durable: after kill -9 the node comes back at the same place.
        node.kill9()
        let again = try await RagdProcess.launch(dataDirectory: dir, extraArguments: LocalCluster.shardArguments())
        defer { again.kill9() }
        let s2 = try await Self.state(again.internalClient())
        #expect(s2.seq == 2 && s2.digest == s.digest)
    }

    /// Replication 3 with etcd: the primary dies, the next in-sync replica
    /// orders writes at once; the old primary returns, catches up from the log
    /// and all three copies end identical, answering as a single node does.
    @Test func primaryFailsOverAndReturnsByTheLog() async throws {
        let etcd = try await EtcdProcess.launch()
        defer { etcd.stop() }
        let cluster = try await LocalCluster.launch(shards: 1, replicas: 3, etcd: etcd.endpoint)
        defer { cluster.stop() }
        let c = cluster.client()
        let docs = ClusterCorpus.documents
        _ = try await c.index(Array(docs[..<100]), collection: "kb")
        let primaryPort = cluster.nodes[0][0].internalPort
        #expect(try await c.clusterStatus().members.first { $0.address.hasSuffix(":\(primaryPort)") }?.primaryOf == UInt32(LocalCluster.testPartitions))
        cluster.kill(shard: 0, replica: 0)
        _ = try await c.index(Array(docs[100...]), collection: "kb")
        _ = try await c.delete(docs[..<10].map(\.id), collection: "kb")
        let during = try await c.clusterStatus()
        #expect(during.members.first { $0.address.hasSuffix(":\(primaryPort)") }?.primaryOf == 0)
        #expect(during.outOfSync > 0)
        try await cluster.relaunch(shard: 0, replica: 0)
        #expect(await eventually(seconds: 30) { (try? await c.clusterStatus().outOfSync) == 0 })
        try await Self.expectIdentical(cluster.nodes[0], partitions: LocalCluster.testPartitions)
        // The same answers as one node holding the same documents.
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let single = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--partitions", "\(LocalCluster.testPartitions)"])
        defer { single.kill9() }
        let s = single.client()
        _ = try await s.index(Array(docs[10...]), collection: "kb")
        for (q, filter) in ClusterCorpus.queries.prefix(20) {
            let a = try await c.query(q, collection: "kb", topK: 10, filter: filter, noCache: true)
            let b = try await s.query(q, collection: "kb", topK: 10, filter: filter, noCache: true)
            #expect(a.sources.map(\.chunkID) == b.sources.map(\.chunkID) && a.sources.map(\.score) == b.sources.map(\.score), "\(q)")
        }
    }

    /// A replica whose missing entries are no longer in the primary's log
    /// (`--replication-log 2`) is copied again: documents, then the log after the copy's base.
    @Test func recoveryByCopyWhenTheLogNoLongerReachesBack() async throws {
        let etcd = try await EtcdProcess.launch()
        defer { etcd.stop() }
        let cluster = try await LocalCluster.launch(shards: 1, replicas: 2, etcd: etcd.endpoint, shardArguments: ["--replication-log", "2"])
        defer { cluster.stop() }
        let c = cluster.client()
        let docs = ClusterCorpus.documents
        _ = try await c.index(Array(docs[..<60]), collection: "kb")
        cluster.kill(shard: 0, replica: 1)
        for d in docs[60...] { _ = try await c.index([d], collection: "kb") }
        _ = try await c.delete(docs[..<5].map(\.id), collection: "kb")
        try await cluster.relaunch(shard: 0, replica: 1)
        #expect(await eventually(seconds: 60) { (try? await c.clusterStatus().outOfSync) == 0 })
        #expect(cluster.coordinator.log.contains("copying it again"))
        try await Self.expectIdentical(cluster.nodes[0], partitions: LocalCluster.testPartitions)
        #expect(try await c.stats(collection: "kb").collections.first?.documents == UInt64(docs.count - 5))
        // The original texts came along with the copy: each replica returns every
        // document's source, and it inflates to the text that was indexed.
        let kept = Array(docs[5...])
        for r in cluster.nodes[0] {
            let client = r.internalClient()
            var sources: [String: Data] = [:]
            for p in 0..<LocalCluster.testPartitions {
                let fetched = try await client.call(.shardFetch, Ragd_V1_ShardFetchRequest.with { $0.shard = Self.key("kb", p); $0.ids = kept.map(\.id) },
                                                    as: Ragd_V1_ShardFetchResponse.self, timeout: hangGuard)
                for d in fetched.documents { sources[d.id] = d.source }
            }
            await client.close()
            #expect(sources.count == kept.count)
            #expect(try kept.allSatisfy { d in try sources[d.id].map(SourceText.decompress) == d.text })
        }
    }

    /// Two coordinators write one id at once: every replica applies the
    /// writes in the primary's order, so all hold the same last one.
    @Test func concurrentWritesToOneIDThroughTwoCoordinators() async throws {
        let etcd = try await EtcdProcess.launch()
        defer { etcd.stop() }
        let cluster = try await LocalCluster.launch(shards: 1, replicas: 3, etcd: etcd.endpoint)
        defer { cluster.stop() }
        let b = try await cluster.launchCoordinator("coord-b")
        defer { b.kill9() }
        let clients = [cluster.client(), b.client()]
        _ = try await clients[0].index([RagDocument(id: "hot", text: "start")], collection: "kb")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, client) in clients.enumerated() {
                group.addTask {
                    for n in 0..<40 { _ = try await client.index([RagDocument(id: "hot", text: "writer \(i) round \(n) zebra")], collection: "kb") }
                }
            }
            try await group.waitForAll()
        }
        try await Self.expectIdentical(cluster.nodes[0], partitions: LocalCluster.testPartitions)
        let a = try await clients[0].query("zebra", collection: "kb", topK: 1, mode: .keyword, noCache: true)
        let bb = try await clients[1].query("zebra", collection: "kb", topK: 1, mode: .keyword, noCache: true)
        #expect(a.sources.first?.content == bb.sources.first?.content && a.sources.first?.content.contains("round 39") == true)
        await b.client().close()
    }

    /// Every replica of every partition: the same sequence number, digest and documents.
    static func expectIdentical(_ replicas: [RagdProcess], partitions: Int, collection: String = "kb") async throws {
        for p in 0..<partitions {
            var states: [Ragd_V1_ShardCountsResponse] = []
            var hashes: [[String: UInt64]] = []
            for r in replicas {
                let client = r.internalClient()
                states.append(try await state(client, collection, p))
                hashes.append(try await client.call(.shardHashes, Ragd_V1_ShardHashesRequest.with { $0.shard = key(collection, p) },
                                                    as: Ragd_V1_ShardHashesResponse.self, timeout: hangGuard).hashes)
                await client.close()
            }
            #expect(Set(states.map(\.seq)).count == 1 && Set(states.map(\.digest)).count == 1, "partition \(p): \(states.map { ($0.seq, $0.digest) })")
            #expect(Set(hashes).count == 1, "partition \(p)")
        }
    }
}

extension Ragd_V1_ShardWriteRequest {
    fileprivate func withVersion(_ v: UInt64) -> Self {
        var r = self
        r.shard.placementVersion = v
        return r
    }
}
