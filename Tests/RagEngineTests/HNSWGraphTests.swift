import Foundation
import RagCore
import RagEngine
import RagServer
import RagTesting
import Testing

/// The HNSW graph against exact search on seeded clustered data. Thresholds sit
/// below what the benchmark measures (`ragctl bench --search-only --index hnsw`),
/// so they hold on any seed's graph.
/// One test at a time (`.serialized`): each is seconds of arithmetic on a
/// thread of its own, and seven at once left the in-process servers of other
/// suites a small share of two cores (clean-clone CI: calls there missed 30 s
/// deadlines while this suite ran).
@Suite(.serialized) struct HNSWGraphTests {
    /// Seconds of arithmetic each: on a thread of its own, not on the few
    /// cooperative threads every in-process server of the run shares.
    func onTestThread(_ body: @Sendable () throws -> Void) async throws {
        try await withOwnThreads(1, name: "hnsw-test") { _ in try body() }
    }

    static let dimension = 32

    /// Points around 50 centres (`ClusteredVectors`); every seed draws the same centres.
    static func points(_ n: Int, seed: UInt64) -> [[Float]] {
        var data = ClusteredVectors(dimension: dimension, centres: 50, seed: 99, pointSeed: seed)
        return data.points(n)
    }

    /// A graph is built from the floats whatever its walk, so one quantized graph
    /// serves both walks: `search` (int8 codes, rescored) and `searchFloats`.
    static func build(_ vectors: [[Float]], quantized: Bool = true) -> HNSWGraph {
        let g = HNSWGraph(dimension: dimension, parameters: .init(m: 8, efConstruction: 64, quantized: quantized))
        for v in vectors { g.add(v) }
        return g
    }

    /// Both walks of a quantized graph: over int8 codes (rescored), and over the floats.
    static let walks = [true, false]

    static func search(_ g: HNSWGraph, _ q: [Float], k: Int, ef: Int, filter: ((Int32) -> Bool)? = nil, admitted: Int? = nil,
                       codes: Bool) -> [Scored] {
        codes ? g.search(q, k: k, ef: ef, filter: filter, admitted: admitted) : g.searchFloats(q, k: k, ef: ef, filter: filter, admitted: admitted)
    }

    static func recall(_ g: HNSWGraph, _ queries: [[Float]], ef: Int, filter: ((Int32) -> Bool)? = nil, codes: Bool = true) -> Double {
        var found = 0, wanted = 0
        for q in queries {
            let exact = Set(g.exactSearch(q, k: 10, filter: filter).map(\.id))
            wanted += exact.count
            found += search(g, q, k: 10, ef: ef, filter: filter, codes: codes).filter { exact.contains($0.id) }.count
        }
        return Double(found) / Double(max(wanted, 1))
    }

    /// Top-10 searches of `index` and of `exact` for each query: `each` checks
    /// both answers (query, exact, index); the result is how many of exact's
    /// chunks `index` found, and of how many.
    static func recall(_ index: PartitionIndex, against exact: PartitionIndex, _ queries: [[Float]],
                       each: ([Float], [Hit], [Hit]) throws -> Void) throws -> (found: Int, wanted: Int) {
        var found = 0, wanted = 0
        for q in queries {
            let truth = try exact.vectorSearch(q, k: 10), got = try index.vectorSearch(q, k: 10)
            try each(q, truth, got)
            wanted += truth.count
            found += Set(truth.map(\.key)).intersection(got.map(\.key)).count
        }
        return (found, wanted)
    }

    @Test func recallAgainstExactRisesWithEf() async throws {
        try await onTestThread {
            let g = Self.build(Self.points(3_000, seed: 1))
            let queries = Self.points(60, seed: 2)
            let all = Dictionary(uniqueKeysWithValues: g.exactSearch(queries[0], k: 3_000).map { ($0.id, $0.score) })
            for codes in Self.walks {
                let low = Self.recall(g, queries, ef: 10, codes: codes), high = Self.recall(g, queries, ef: 100, codes: codes)
                #expect(high >= 0.95, "recall@10 at ef 100 (int8 walk: \(codes)): \(high)")
                #expect(high >= low)
                // Scores are exact inner products, best first.
                let hits = Self.search(g, queries[0], k: 10, ef: 100, codes: codes)
                #expect(hits.count == 10 && zip(hits, hits.dropFirst()).allSatisfy { Scored.before($0, $1) })
                #expect(hits.allSatisfy { hit in abs(hit.score - all[hit.id]!) < 1e-6 })
            }
        }
    }

    @Test func sameInsertsSameGraphSameResults() async throws {
        try await onTestThread {
            let data = Self.points(1_500, seed: 3)
            let a = Self.build(data), b = Self.build(data)
            for q in Self.points(30, seed: 4) {
                for codes in Self.walks {
                    let x = Self.search(a, q, k: 10, ef: 40, codes: codes)
                    #expect(x == Self.search(b, q, k: 10, ef: 40, codes: codes))
                    #expect(x == Self.search(a, q, k: 10, ef: 40, codes: codes))
                }
            }
        }
    }

    @Test func deletedNodesAreNeverReturned() async throws {
        try await onTestThread {
            let g = Self.build(Self.points(2_000, seed: 5))
            let queries = Self.points(40, seed: 6)
            // Delete every node that is some query's best, and a third of the rest.
            var gone = Set(queries.compactMap { g.exactSearch($0, k: 1).first?.id })
            for i in stride(from: 0, to: 2_000, by: 3) { gone.insert(Int32(i)) }
            for id in gone { g.remove(id) }
            #expect(g.liveCount == 2_000 - gone.count)
            for codes in Self.walks {
                for q in queries {
                    let hits = Self.search(g, q, k: 10, ef: 64, codes: codes)
                    #expect(hits.count == 10 && hits.allSatisfy { !gone.contains($0.id) })
                }
                #expect(Self.recall(g, queries, ef: 100, codes: codes) >= 0.9)
            }
            // Compaction drops them and keeps the answers.
            let (c, map) = g.compacted()
            #expect(c.count == g.liveCount && c.deletedCount == 0)
            let q = queries[0]
            #expect(Set(g.exactSearch(q, k: 10).map { map[Int($0.id)]! }) == Set(c.exactSearch(q, k: 10).map(\.id)))
        }
    }

    /// A filter never makes a search short of k when k nodes pass it: broad
    /// filters walk the graph, selective ones (by the admitted count) scan.
    @Test func filteredSearchesAreNeverShort() async throws {
        try await onTestThread {
            let g = Self.build(Self.points(3_000, seed: 7))
            let queries = Self.points(30, seed: 8)
            for modulus in [2, 10, 50, 1_000] {
                let filter: (Int32) -> Bool = { $0 % Int32(modulus) == 0 }
                let admitted = (0..<3_000).filter { $0 % modulus == 0 }.count
                for codes in Self.walks {
                    for q in queries {
                        for hint in [nil, admitted] {
                            let hits = Self.search(g, q, k: 10, ef: 40, filter: filter, admitted: hint, codes: codes)
                            #expect(hits.count == min(10, admitted), "modulus \(modulus): \(hits.count)")
                            #expect(hits.allSatisfy { filter($0.id) })
                        }
                    }
                    // The admitted count makes a selective filter exact.
                    if admitted <= HNSWGraph.exactScanNodes {
                        for q in queries.prefix(5) {
                            #expect(Self.search(g, q, k: 10, ef: 10, filter: filter, admitted: admitted, codes: codes) == g.exactSearch(q, k: 10, filter: filter))
                        }
                    } else {
                        #expect(Self.recall(g, queries, ef: 100, filter: filter, codes: codes) >= 0.9)
                    }
                }
            }
        }
    }
}

extension HNSWGraphTests {
    /// Rows that cannot have their file (here: its directory does not exist)
    /// live in memory, the graph says so, and it answers as a mapped one does.
    @Test func vectorsWithoutAFileFallBackToMemory() async throws {
        try await onTestThread {
            let data = Self.points(600, seed: 31)
            let dir = makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let mapped = HNSWGraph(dimension: Self.dimension, parameters: .init(m: 8, efConstruction: 64, quantized: true), backing: .file(directory: dir))
            let fallen = HNSWGraph(dimension: Self.dimension, parameters: .init(m: 8, efConstruction: 64, quantized: true),
                                   backing: .file(directory: dir + "/no-such-directory"))
            for v in data { mapped.add(v); fallen.add(v) }
            #expect(mapped.backing == .file(directory: dir) && fallen.backing == .memory)
            for q in Self.points(20, seed: 32) {
                #expect(mapped.search(q, k: 10, ef: 40) == fallen.search(q, k: 10, ef: 40))
            }
        }
    }

    /// The int8 walk finds what the float walk finds, and a saved quantized
    /// graph reads back with the same scales: the same answers after a restart,
    /// though its scales came from the order the vectors were added in.
    @Test func aQuantizedGraphWalksCodesAndReadsBackTheSame() async throws {
        try await onTestThread {
            // Points far from the first ones come late, so the scales widen as the graph grows.
            var data = Self.points(2_000, seed: 11)
            for i in stride(from: 1_500, to: 2_000, by: 7) { data[i] = data[i].map { $0 * 3 } }
            let codes = Self.build(data)
            let queries = Self.points(40, seed: 12)
            let a = Self.recall(codes, queries, ef: 100, codes: false), b = Self.recall(codes, queries, ef: 100)
            #expect(b >= 0.95 && b >= a - 0.02, "recall@10 at ef 100: floats \(a), codes \(b)")
            let labels = (0..<codes.count).map { NodeLabel(documentID: "d\($0)", ordinal: 0, contentHash: UInt64($0)) }
            let bytes = codes.encoded(labels: labels)
            let (back, _) = try #require(HNSWGraph.decode(bytes, dimension: Self.dimension, parameters: codes.parameters))
            for q in queries { #expect(back.search(q, k: 10, ef: 40) == codes.search(q, k: 10, ef: 40)) }
            // Floats in a mapped file: the same graph and answers, no file left in the directory.
            let dir = NSTemporaryDirectory() + "hnsw-rows-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let mapped = HNSWGraph(dimension: Self.dimension, parameters: codes.parameters, backing: .file(directory: dir))
            for v in data { mapped.add(v) }  // grows and maps the file again several times
            #expect(mapped.backing == .file(directory: dir))
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
            for q in queries { #expect(mapped.search(q, k: 10, ef: 40) == codes.search(q, k: 10, ef: 40)) }
            #expect((0..<Int32(data.count)).allSatisfy { mapped.vector($0) == data[Int($0)] })
            let (mappedBack, _) = try #require(HNSWGraph.decode(bytes, dimension: Self.dimension, parameters: codes.parameters,
                                                                backing: .file(directory: dir)))
            for q in queries.prefix(10) { #expect(mappedBack.search(q, k: 10, ef: 40) == codes.search(q, k: 10, ef: 40)) }
            // A directory that cannot hold the file: the rows stay in memory.
            let nowhere = HNSWGraph(dimension: Self.dimension, parameters: codes.parameters, backing: .file(directory: dir + "/missing"))
            for v in data.prefix(100) { nowhere.add(v) }
            #expect(nowhere.backing == .memory && nowhere.vector(99) == data[99])
            // A graph file is for one kind of walk only.
            var floatParameters = codes.parameters
            floatParameters.quantized = false
            #expect(HNSWGraph.decode(bytes, dimension: Self.dimension, parameters: floatParameters) == nil)
            let floats = Self.build(Array(data.prefix(100)), quantized: false)
            #expect(HNSWGraph.decode(floats.encoded(labels: Array(labels.prefix(100))), dimension: Self.dimension, parameters: codes.parameters) == nil)
        }
    }
}

/// A partition with `kind: .hnsw`: the graph follows inserts, replacements and
/// deletes (through a compaction), and answers with exact scores.
extension HNSWGraphTests {
    @Test func aPartitionsGraphFollowsItsWrites() async throws {
        try await onTestThread {
            let settings = HNSWSettings(m: 8, efConstruction: 64, ef: 64)
            let exact = PartitionIndex(dimension: Self.dimension, partition: 0)
            let graph = PartitionIndex(dimension: Self.dimension, partition: 0, kind: .hnsw(settings))
            let vectors = Self.points(4_000, seed: 11)
            func write(_ doc: PreparedDocument) { exact.upsert(doc); graph.upsert(doc) }
            // 1,500 documents of two chunks; then 1,300 of them deleted and 200 replaced.
            for i in 0..<1_500 {
                write(PreparedDocument(id: "d\(i)", metadata: ["even": .bool(i % 2 == 0)], contentHash: UInt64(i), chunks: ["a", "b"],
                                       embeddings: [vectors[2 * i], vectors[2 * i + 1]]))
            }
            for i in 0..<1_300 { exact.remove("d\(i)"); graph.remove("d\(i)") }
            for i in 1_300..<1_500 {
                write(PreparedDocument(id: "d\(i)", metadata: ["even": .bool(i % 2 == 0)], contentHash: UInt64(i + 1), chunks: ["c"],
                                       embeddings: [vectors[3_000 + i - 1_300]]))
            }
            // 3,000 nodes were added and 2,800 deleted: compacted along the way.
            let nodes = try #require(graph.graphNodes)
            #expect(nodes.nodes < 3_000 && nodes.nodes - nodes.deleted == 200, "\(nodes)")
            let (same, total) = try Self.recall(graph, against: exact, Self.points(40, seed: 12)) { q, a, b in
                #expect(b.count == 10 && b.allSatisfy { Int($0.key.documentID.dropFirst())! >= 1_300 })
                for h in b { if let e = a.first(where: { $0.key == h.key }) { #expect(e.score == h.score) } }
                let filter = MetadataFilter.compare(key: "even", op: .eq, values: [.bool(true)])
                let f = try graph.vectorSearch(q, k: 10, filter: filter)
                #expect(f.count == 10 && f.allSatisfy { $0.metadata["even"] == .bool(true) })
            }
            #expect(Double(same) / Double(total) >= 0.95, "recall \(same)/\(total)")
            // The graph holds the only copy of the vectors: stored documents read them from it.
            for id in ["d1300", "d1499"] { #expect(graph.stored(id)?.embeddings == exact.stored(id)?.embeddings && exact.stored(id) != nil) }
        }
    }
}

/// A saved graph is adopted by the next load of the partition: every chunk it
/// still matches reuses its node, the rest are tombstoned or inserted, and a
/// damaged file is refused (the graph is then built from the documents).
extension HNSWGraphTests {
    static func documents(_ vectors: [[Float]], version: UInt64 = 0) -> [PreparedDocument] {
        (0..<vectors.count / 2).map { i in
            PreparedDocument(id: "d\(i)", metadata: [:], contentHash: UInt64(i) &+ version, chunks: ["a", "b"], embeddings: [vectors[2 * i], vectors[2 * i + 1]])
        }
    }

    /// With the int8 walk: its scales are saved and adopted with the graph.
    @Test func aSavedGraphIsAdoptedAndReconciled() async throws {
        try await onTestThread {
            let kind = VectorIndexKind.hnsw(HNSWSettings(m: 8, efConstruction: 64, ef: 64, quantized: true))
            let docs = Self.documents(Self.points(2_000, seed: 21))
            let original = PartitionIndex(dimension: Self.dimension, partition: 0, kind: kind)
            for d in docs { original.upsert(d) }
            let saved = try #require(original.graphData())
            let queries = Self.points(30, seed: 22)

            // Loaded in another order: every node reused, the same answers.
            let again = PartitionIndex(dimension: Self.dimension, partition: 0, kind: kind)
            #expect(again.adoptGraph(saved))
            for d in docs.reversed() { again.upsert(d) }
            let adoption = again.finishGraphAdoption()
            #expect(adoption.reused == 2_000 && adoption.tombstoned == 0)
            #expect(again.graphNodes! == (nodes: 2_000, deleted: 0))
            for q in queries {
                let a = try original.vectorSearch(q, k: 10), b = try again.vectorSearch(q, k: 10)
                #expect(a.map(\.key) == b.map(\.key) && a.map(\.score) == b.map(\.score))
            }

            // Written after the save (a crash lost the newer graph): 100 documents
            // deleted, 100 changed, 50 added. Those nodes are tombstoned or inserted.
            let changed = Self.documents(Self.points(200, seed: 23), version: 7).map { d in
                var d = d
                d.id = "d\(Int(d.id.dropFirst())! + 100)"
                return d
            }
            let added = Self.documents(Self.points(100, seed: 24)).map { d in var d = d; d.id = "new\(d.id)"; return d }
            let now = Array(docs[200...]) + changed + added
            let reconciled = PartitionIndex(dimension: Self.dimension, partition: 0, kind: kind)
            #expect(reconciled.adoptGraph(saved))
            for d in now { reconciled.upsert(d) }
            let r = reconciled.finishGraphAdoption()
            #expect(r.reused == 2 * 800 && r.tombstoned == 2 * 200)
            let fresh = PartitionIndex(dimension: Self.dimension, partition: 0)
            for d in now { fresh.upsert(d) }
            var same = 0, total = 0
            for q in queries + changed.flatMap(\.embeddings).prefix(20) + added.flatMap(\.embeddings).prefix(20) {
                let a = try fresh.vectorSearch(q, k: 10), b = try reconciled.vectorSearch(q, k: 10)
                total += a.count
                same += Set(a.map(\.key)).intersection(b.map(\.key)).count
                #expect(b.allSatisfy { h in reconciled.contentHash(of: h.key.documentID) != nil })
            }
            #expect(Double(same) / Double(total) >= 0.95, "recall \(same)/\(total)")

            // Damaged or foreign bytes are refused, and nothing is adopted.
            var flipped = saved
            flipped[flipped.count / 2] ^= 0x40
            let other = PartitionIndex(dimension: Self.dimension, partition: 0, kind: kind)
            #expect(!other.adoptGraph(flipped))
            #expect(!other.adoptGraph(saved.prefix(saved.count - 100)))
            #expect(!PartitionIndex(dimension: Self.dimension, partition: 0, kind: .hnsw(HNSWSettings(m: 12))).adoptGraph(saved))
            for d in docs { other.upsert(d) }
            #expect(other.finishGraphAdoption().reused == 0 && other.graphNodes! == (nodes: 2_000, deleted: 0))  // built from the documents
        }
    }
}

/// An exact partition turned into a graph while writes go on (index kind
/// `auto`): writes made between the copy and the install are in the graph,
/// deleted and replaced chunks are not, and answers match the exact scan.
@Suite(.serialized) struct GraphBuildTests {
    func onTestThread(_ body: @Sendable () throws -> Void) async throws { try await HNSWGraphTests().onTestThread(body) }

    static func document(_ i: Int, _ v: [Float], version: Int = 0) -> PreparedDocument {
        PreparedDocument(id: "d\(i)", metadata: [:], contentHash: UInt64(version), chunks: ["chunk \(i) v\(version)"], embeddings: [v])
    }

    @Test func writesDuringTheBuildAreReplayedIntoTheGraph() async throws {
        try await onTestThread {
            let dim = HNSWGraphTests.dimension
            let data = HNSWGraphTests.points(2_400, seed: 11)
            let live = PartitionIndex(dimension: dim, partition: 0, kind: .flat)
            for i in 0..<2_000 { live.upsert(Self.document(i, data[i])) }
            let settings = HNSWSettings(m: 8, efConstruction: 64, ef: 80)
            let input = try #require(live.beginGraphBuild(settings: settings))
            #expect(live.beginGraphBuild() == nil && live.isBuildingGraph)
            // Meanwhile: new documents, deletions, and replacements with other vectors.
            for i in 2_000..<2_400 { live.upsert(Self.document(i, data[i])) }
            let gone = Array(stride(from: 0, to: 2_000, by: 7))
            for i in gone { live.remove("d\(i)") }
            let replaced = Array(stride(from: 3, to: 2_000, by: 11)).filter { $0 % 7 != 0 }
            for i in replaced { live.upsert(Self.document(i, data[2_399 - i % 400], version: 1)) }
            let graph = try #require(PartitionIndex.buildGraph(input))
            live.finishGraphBuild(graph, input: input)
            #expect(live.kind == .hnsw(settings) && !live.isBuildingGraph)

            // The same documents written to an exact index from scratch.
            let exact = PartitionIndex(dimension: dim, partition: 0, kind: .flat)
            for i in 0..<2_400 where !gone.contains(i) {
                exact.upsert(replaced.contains(i) ? Self.document(i, data[2_399 - i % 400], version: 1) : Self.document(i, data[i]))
            }
            #expect(live.chunkCount == exact.chunkCount)
            let (found, wanted) = try HNSWGraphTests.recall(live, against: exact, HNSWGraphTests.points(50, seed: 12)) { _, truth, got in
                #expect(got.count == 10)
                #expect(!got.contains { gone.contains(Int($0.key.documentID.dropFirst())!) })
                // A replaced document is found by its new vector and text only.
                for h in got where replaced.contains(Int(h.key.documentID.dropFirst())!) { #expect(h.text.hasSuffix("v1")) }
                for h in got { if let t = truth.first(where: { $0.key == h.key }) { #expect(abs(t.score - h.score) < 1e-5) } }
            }
            #expect(Double(found) / Double(wanted) >= 0.95, "recall \(found)/\(wanted)")
            // A build that is abandoned leaves the exact index as it was.
            let other = PartitionIndex(dimension: dim, partition: 1, kind: .flat)
            other.upsert(Self.document(0, data[0]))
            _ = try #require(other.beginGraphBuild(settings: settings))
            other.abandonGraphBuild()
            let top = try other.vectorSearch(data[0], k: 1)
            #expect(other.kind == .flat && !other.isBuildingGraph && top.first?.key.documentID == "d0")
        }
    }

    /// Compaction in the background: a graph with more tombstones than live
    /// nodes is rebuilt from its live vectors while writes go on; afterwards it
    /// holds no tombstone but those of the writes replayed, and answers alike.
    @Test func aGraphIsCompactedWhileWritesGoOn() async throws {
        try await onTestThread {
            let dim = HNSWGraphTests.dimension
            let data = HNSWGraphTests.points(4_000, seed: 21)
            let settings = HNSWSettings(m: 8, efConstruction: 64, ef: 80)
            let live = PartitionIndex(dimension: dim, partition: 0, kind: .hnsw(settings))
            live.compactsOnRemove = false
            let exact = PartitionIndex(dimension: dim, partition: 0, kind: .flat)
            for i in 0..<3_000 { live.upsert(Self.document(i, data[i])); exact.upsert(Self.document(i, data[i])) }
            for i in 0..<2_000 { live.remove("d\(i)"); exact.remove("d\(i)") }
            #expect(live.graphNeedsCompaction && live.graphNodes?.deleted == 2_000)
            let input = try #require(live.beginGraphBuild())
            #expect(input.slots.count == 1_000 && input.settings == settings)
            for i in 3_000..<3_300 { live.upsert(Self.document(i, data[i])); exact.upsert(Self.document(i, data[i])) }
            for i in 2_000..<2_100 { live.remove("d\(i)"); exact.remove("d\(i)") }
            let graph = try #require(PartitionIndex.buildGraph(input))
            live.finishGraphBuild(graph, input: input)
            let nodes = try #require(live.graphNodes)
            #expect(nodes.deleted == 100 && nodes.nodes - nodes.deleted == 1_200, "\(nodes)")
            #expect(!live.graphNeedsCompaction && !live.isBuildingGraph)
            let (found, wanted) = try HNSWGraphTests.recall(live, against: exact, HNSWGraphTests.points(50, seed: 22)) { _, _, got in
                #expect(got.count == 10 && got.allSatisfy { Int($0.key.documentID.dropFirst())! >= 2_100 })
            }
            #expect(Double(found) / Double(wanted) >= 0.95, "recall \(found)/\(wanted)")
            // A cancelled build is not installed.
            #expect(PartitionIndex.buildGraph(input, cancelled: { true }) == nil)
        }
    }
}

@Suite struct GraphSaveTests {
    /// Background saves come every `saveEvery` changes while the graph is small,
    /// then every quarter of the graph, so what they write in all stays a small
    /// multiple of the final graph instead of growing with its square.
    @Test func savesComeLessOftenAsTheGraphGrows() {
        let policy = VectorIndexPolicy(choice: .hnsw, saveEvery: 20_000)
        #expect(!policy.saveDue(changes: 19_999, nodes: 1_000))
        #expect(policy.saveDue(changes: 20_000, nodes: 80_000))
        #expect(!policy.saveDue(changes: 20_000, nodes: 1_000_000))
        #expect(policy.saveDue(changes: 250_000, nodes: 1_000_000))
        #expect(!VectorIndexPolicy(choice: .hnsw, saveEvery: 0).saveDue(changes: 1_000_000, nodes: 10))
        // Growing a graph to 2.5M nodes, 64 chunks at a time: what the saves write.
        var nodes = 0, changes = 0, saved = 0, saves = 0
        while nodes < 2_500_000 {
            nodes += 64
            changes += 64
            if policy.saveDue(changes: changes, nodes: nodes) {
                saved += nodes
                saves += 1
                changes = 0
            }
        }
        #expect(saved <= 5 * nodes && saves < 40, "\(saves) saves wrote \(saved) nodes")
    }
}
