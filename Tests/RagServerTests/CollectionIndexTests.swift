import Foundation
import RagClient
import RagCore
import RagEngine
import RagTesting
import RagWire
import Testing

/// Each collection names its vector index (`IndexRequest.index`): exact, int8,
/// hnsw or auto. The choice is kept in the catalog across restarts, shows in
/// Stats per collection and per partition, reaches shard nodes through a
/// coordinator, and a reindex changes it. `auto` partitions switch from the
/// exact scan to a graph built in the background once they are large.
@Suite(.serialized) struct CollectionIndexTests {
    static func partitionKinds(_ c: RagClient, _ name: String) async throws -> [(chunks: UInt64, index: String)] {
        let s = try await c.stats(collection: name, timeout: hangGuard)
        return try #require(s.collections.first { $0.name == name }).partitions.map { ($0.chunks, $0.index) }
    }

    static func collectionIndex(_ c: RagClient, _ name: String) async throws -> String {
        try #require(try await c.stats(collection: name, timeout: hangGuard).collections.first { $0.name == name }).index
    }

    /// Share of the exact collection's top-10 chunk ids that `other` returns too.
    static func overlap(_ c: RagClient, exact: String, other: String) async throws -> Double {
        var same = 0, total = 0
        for (q, _) in ClusterCorpus.queries.prefix(40) {
            let r = try await c.query(q, collection: exact, topK: 10, mode: .vector, noCache: true)
            let s = try await c.query(q, collection: other, topK: 10, mode: .vector, noCache: true)
            total += r.sources.count
            same += Set(r.sources.map(\.chunkID)).intersection(s.sources.map(\.chunkID)).count
        }
        return Double(same) / Double(max(total, 1))
    }

    static let threshold = 40

    @Test func collectionsChooseTheirIndex() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let flags = ["--auto-hnsw-threshold", "\(Self.threshold)"]
        var server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: flags)
        defer { server.kill9() }
        var c = server.client()
        let docs = ClusterCorpus.documents
        let kinds = ["ex": "", "hn": "hnsw", "au": "auto", "i8": "int8"]
        for (name, index) in kinds.sorted(by: { $0.key < $1.key }) {
            for start in stride(from: 0, to: docs.count, by: 100) {
                _ = try await c.index(Array(docs[start..<min(start + 100, docs.count)]), collection: name, index: index, timeout: hangGuard)
            }
        }
        for (name, index) in kinds { #expect(try await Self.collectionIndex(c, name) == (index.isEmpty ? "exact" : index)) }
        #expect(try await Self.partitionKinds(c, "ex").allSatisfy { $0.index == "exact" })
        #expect(try await Self.partitionKinds(c, "hn").allSatisfy { $0.index == "hnsw" })
        #expect(try await Self.partitionKinds(c, "i8").allSatisfy { $0.index == "int8" })
        // auto: partitions past the threshold get their graph in the background; the rest stay exact.
        let large = try await Self.partitionKinds(c, "au").filter { $0.chunks >= UInt64(Self.threshold) }.count
        #expect(large > 0)
        #expect(await eventually(seconds: 60) {
            (try? await Self.partitionKinds(c, "au").allSatisfy { ($0.chunks >= UInt64(Self.threshold)) == ($0.index == "hnsw") }) ?? false
        })
        for name in ["hn", "au", "i8"] {
            let o = try await Self.overlap(c, exact: "ex", other: name)
            #expect(o >= 0.95, "\(name): top-10 overlap with exact \(o)")
        }
        // Written after the switch: found, and deletes never come back.
        let fresh = RagDocument(id: "fresh", text: "zeppelin hangar mooring mast for airships", metadata: [:])
        _ = try await c.index([fresh], collection: "au", timeout: hangGuard)
        #expect(try await c.query("zeppelin hangar mooring mast", collection: "au", topK: 1, mode: .vector, noCache: true).sources.first?.documentID == "fresh")
        _ = try await c.delete(["fresh"], collection: "au", timeout: hangGuard)
        #expect(try await c.query("zeppelin hangar mooring mast", collection: "au", topK: 3, mode: .vector, noCache: true).sources.allSatisfy { $0.documentID != "fresh" })

        // An existing collection keeps its index; naming another is refused, a bad name too.
        #expect(await code { _ = try await c.index([fresh], collection: "hn", index: "exact", timeout: hangGuard) } == .failedPrecondition)
        #expect(await code { _ = try await c.index([fresh], collection: "ex", index: "hnsw", timeout: hangGuard) } == .failedPrecondition)
        do {
            _ = try await c.index([fresh], collection: "new", index: "annoy", timeout: hangGuard)
            Issue.record("an unknown index was accepted")
        } catch {
            #expect(error.code == .invalidArgument && error.message.contains("index must be exact, int8, hnsw or auto"), "\(error)")
        }
        let names = try await c.listCollections(timeout: hangGuard).map(\.name)
        #expect(!names.contains("new"))
        _ = try await c.index([fresh], collection: "hn", index: "hnsw", timeout: hangGuard)
        _ = try await c.index([fresh], collection: "hn", timeout: hangGuard)

        // A clean restart keeps every choice; auto partitions adopt their saved graphs at once.
        await c.close()
        #expect(await server.stop() == 0)
        server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: flags)
        c = server.client()
        for (name, index) in kinds { #expect(try await Self.collectionIndex(c, name) == (index.isEmpty ? "exact" : index)) }
        #expect(try await Self.partitionKinds(c, "au").allSatisfy { ($0.chunks >= UInt64(Self.threshold)) == ($0.index == "hnsw") })
        #expect(try await Self.partitionKinds(c, "hn").allSatisfy { $0.index == "hnsw" })
        // After kill -9 (no graph saved since), auto partitions open exact and switch again.
        _ = try await c.index([RagDocument(id: "late", text: "a late document about journal pages", metadata: [:])], collection: "au", timeout: hangGuard)
        await c.close()
        server.kill9()
        server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: flags)
        c = server.client()
        #expect(await eventually(seconds: 60) {
            (try? await Self.partitionKinds(c, "au").allSatisfy { ($0.chunks >= UInt64(Self.threshold)) == ($0.index == "hnsw") }) ?? false
        })
        #expect(try await Self.overlap(c, exact: "ex", other: "au") >= 0.95)

        // A reindex changes a collection's index.
        let job = try await c.submitReindexJob(collection: "ex", index: "hnsw", timeout: hangGuard)
        #expect(try await c.waitForJob(job.id, every: .milliseconds(100), limit: .seconds(300)).state == "succeeded")
        #expect(try await Self.collectionIndex(c, "ex") == "hnsw")
        #expect(try await Self.partitionKinds(c, "ex").allSatisfy { $0.index == "hnsw" })
        #expect(await code { _ = try await c.submitReindexJob(collection: "ex", index: "kd-tree", timeout: hangGuard) } == .invalidArgument)
        await c.close()
    }

    /// Through a coordinator the choice travels with every shard write; each
    /// node records it beside the partition and keeps it across a restart.
    @Test func aClusterCollectionsIndexReachesItsNodes() async throws {
        let cluster = try await LocalCluster.launch(shards: 2, replicas: 1)
        defer { cluster.stop() }
        let c = cluster.client()
        let docs = ClusterCorpus.documents
        _ = try await c.index(Array(docs.prefix(120)), collection: "hn", index: "hnsw", timeout: hangGuard)
        _ = try await c.index(Array(docs.prefix(120)), collection: "ex", timeout: hangGuard)
        #expect(try await Self.collectionIndex(c, "hn") == "hnsw")
        #expect(try await Self.partitionKinds(c, "hn").allSatisfy { $0.index == "hnsw" })
        #expect(try await Self.partitionKinds(c, "ex").allSatisfy { $0.index == "exact" })
        cluster.kill(shard: 0, replica: 0)
        try cluster.restart(shard: 0, replica: 0)
        #expect(await eventually(seconds: 30) {
            (try? await Self.partitionKinds(c, "hn").allSatisfy { $0.index == "hnsw" }) ?? false
        })
        #expect(try await Self.overlap(c, exact: "ex", other: "hn") >= 0.95)
        await c.close()
    }

    /// `--hnsw-save-every`: a partition saves its graph (in its index image) in the background while
    /// it serves, so a kill -9 leaves only the writes since the last save to
    /// redo. The files hold every chunk written before the save, and the
    /// restarted server answers as the exact collection does. With the int8
    /// walk, each partition's float vectors are in a mapped file its image names.
    @Test(arguments: ["float", "int8"]) func graphsAreSavedWhileServing(walk: String) async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let flags = ["--vector-index", "hnsw", "--hnsw-save-every", "40", "--hnsw-walk", walk]
        var server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: flags)
        defer { server.kill9() }
        var c = server.client()
        let docs = ClusterCorpus.documents
        for start in stride(from: 0, to: docs.count, by: 50) {
            let batch = Array(docs[start..<min(start + 50, docs.count)])
            _ = try await c.index(batch, collection: "kb", timeout: hangGuard)
            _ = try await c.index(batch, collection: "ex", index: "exact", timeout: hangGuard)
        }
        let files = (0..<4).map { String(format: "%@/collections/kb/p%03d.sqlite-image", dir, $0) }
        let counts = try await Self.partitionKinds(c, "kb").map(\.chunks)
        // Each partition wrote more than 40 chunks: each has saved its graph, nodes labelled.
        #expect(counts.allSatisfy { $0 > 40 })
        #expect(await eventually(seconds: 30) { files.allSatisfy { FileManager.default.fileExists(atPath: $0) } })
        for (p, f) in files.enumerated() {
            let image = try #require(FileManager.default.contents(atPath: f))
            let settings = HNSWSettings(quantized: walk == "int8")
            let backing = VectorBacking.keptFile(prefix: String(format: "%@/collections/kb/p%03d.sqlite-vectors-", dir, p))
            let (index, _) = try #require(PartitionIndex.decodeImage(image, partition: p, dimension: 384, kinds: [.hnsw(settings)], vectorBacking: backing))
            #expect(try #require(index.graphNodes).nodes >= 40 && index.documentCount >= 20)
        }
        await c.close()
        server.kill9()
        server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: flags)
        c = server.client()
        #expect(try await Self.partitionKinds(c, "kb").map(\.chunks) == counts)
        #expect(try await Self.overlap(c, exact: "ex", other: "kb") >= 0.95)
        // The int8 walk's floats: one kept file per partition's graph, mapped by
        // the server and named by its image; files of older graphs are gone.
        let maps = readProcFile("/proc/\(server.pid)/maps")
        let mapped = Set(maps.split(separator: "\n").filter { $0.contains("/collections/kb/p") && $0.contains(".sqlite-vectors-") }
            .compactMap { $0.split(separator: " ").last.map(String.init) })
        #expect(mapped.count == (walk == "int8" ? 4 : 0), "\(mapped)")
        let kept = try FileManager.default.contentsOfDirectory(atPath: dir + "/collections/kb").filter { $0.contains("-vectors-") }
        #expect(Set(kept.map { dir + "/collections/kb/" + $0 }) == mapped, "\(kept)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/collections/kb").allSatisfy { !$0.hasPrefix(".vectors-") })
        await c.close()
    }
}
