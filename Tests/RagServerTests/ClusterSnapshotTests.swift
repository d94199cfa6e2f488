import Foundation
import RagClient
import RagCore
import RagTesting
import RagWire
import Synchronization
import Testing

/// Snapshots through a coordinator: each partition is copied on one of its
/// shard nodes at one point, and the archive restores on a single server.
@Suite(.serialized) struct ClusterSnapshotTests {
    /// A 3-shard, 2-replica collection is snapshotted while a writer adds three
    /// documents per call: the archive holds whole calls only, each partition
    /// at a replication log position, read from a node of the cluster. Restored
    /// on a single server it holds exactly those documents; a second snapshot,
    /// taken once the writer stopped and restored over the first, answers every
    /// query in every mode exactly as the cluster does (chunks, scores,
    /// partitions, answers). With one replica of each partition killed, a
    /// snapshot is copied from the others.
    /// Run with the static cluster file and with the layout in etcd.
    @Test(arguments: [false, true]) func aThreeShardSnapshotRestoresOnASingleServer(etcd: Bool) async throws {
        let control = etcd ? try await EtcdProcess.launch() : nil
        defer { control?.stop() }
        let cluster = try await LocalCluster.launch(shards: 3, replicas: 2, etcd: control?.endpoint)
        defer { cluster.stop() }
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = cluster.client(timeout: hangGuard)
        let docs = ClusterCorpus.documents
        for start in stride(from: 0, to: docs.count, by: 50) {
            _ = try await c.index(Array(docs[start..<min(start + 50, docs.count)]), collection: "kb")
        }
        @Sendable func batch(_ i: Int) -> [RagDocument] {
            (0..<3).map { j in RagDocument(id: "w-\(i)-\(j)", text: "Write \(i) part \(j): ledger quota spool\(i * 3 + j). token cache merge") }
        }
        let (first, n) = try await SnapshotTests.snapshotWhileWriting(c, holding: docs.count, batch: batch)
        #expect(first.partitions == (etcd ? UInt32(LocalCluster.testPartitions) : 3))

        // The manifest: every partition read from a node of the cluster, at a log position.
        let archive = dir + "/first.ragsnap"
        _ = try await c.downloadSnapshot(first.name, to: archive)
        let manifest = try Self.manifest(of: archive)
        let nodes = Set(cluster.nodes.flatMap { $0 }.map { "127.0.0.1:\($0.internalPort)" })
        let files = manifest["files"] as? [[String: Any]] ?? []
        #expect(files.count == Int(first.partitions))
        for f in files {
            #expect(nodes.contains(f["replica"] as? String ?? ""), "\(f["replica"] ?? "none") is not one of \(nodes.sorted())")
            #expect((f["seq"] as? Int ?? 0) > 0)
        }
        let second = try await c.createSnapshot(collection: "kb").snapshot
        #expect(try await c.listSnapshots().map(\.name) == [first.name, second.name])
        let archive2 = dir + "/second.ragsnap"
        _ = try await c.downloadSnapshot(second.name, to: archive2)
        // A coordinator keeps snapshots but does not restore them.
        #expect(await code { _ = try await c.restoreSnapshot(first.name) } == .failedPrecondition)

        let single = try await RagdProcess.launch(dataDirectory: dir + "/single")
        let s = single.client(timeout: hangGuard)
        _ = try await s.uploadSnapshot(archive, as: "first")
        let restored = try await s.restoreSnapshot("first")
        #expect(restored.collection == "kb" && restored.documents == first.documents && restored.chunks == first.chunks)
        for i in [0, n - 1] {
            #expect(try await s.query("spool\(i * 3 + 1)", collection: "kb", topK: 1, mode: .keyword).sources.first?.documentID == "w-\(i)-1")
        }
        #expect(try await s.query("spool\(n * 3 + 1)", collection: "kb", topK: 1, mode: .keyword).sources.first?.documentID != "w-\(n)-1")

        // Restored over the first: the cluster's answers, exactly.
        _ = try await s.uploadSnapshot(archive2, as: "second")
        #expect(try await s.restoreSnapshot("second").documents == second.documents)
        let compared = try await ClusterTests.expectSameAnswers(c, s, queries: ClusterCorpus.queries + [("ledger quota spool4", nil)])
        #expect(compared == 3 * (ClusterCorpus.queries.count + 1))
        // With a replica of every partition killed, the copies come from the others.
        for shard in 0..<3 { cluster.kill(shard: shard, replica: shard % 2) }
        let third = try await c.createSnapshot(collection: "kb").snapshot
        #expect(third.documents == second.documents && third.chunks == second.chunks)
        await c.close()
        await s.close()
        _ = await single.stop()
    }

    /// The archive's manifest.json, parsed.
    static func manifest(of archive: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: archive))
        let start = try #require(SnapshotTests.offset(of: "manifest.json", in: data))
        let header = data[(start - 512)..<start]
        let size = Int(String(decoding: header.dropFirst(124).prefix(11), as: UTF8.self), radix: 8) ?? 0
        return try #require(try JSONSerialization.jsonObject(with: data[start..<start + size]) as? [String: Any])
    }
}
