import Foundation
import RagCore
@testable import RagEngine
import Testing

/// A partition index read back from its image is the index it was: the same
/// answers to every search, and the same answers after the same later writes
/// (free slots and free documents are reused alike). A damaged image is
/// refused, never half read.
@Suite struct PartitionImageTests {
    static let dimension = 16
    static let words = ["alpha", "beta", "gamma", "delta", "kernel", "socket", "page", "cache", "shard", "tree", "frame", "token"]

    static func kinds() -> [VectorIndexKind] { [.flat, .int8, .hnsw(HNSWSettings(m: 8, efConstruction: 40, ef: 40)), .hnsw(HNSWSettings(m: 8, efConstruction: 40, ef: 40, quantized: true))] }

    /// Seeded documents; `version` changes every text, vector and hash.
    static func documents(_ range: Range<Int>, version: UInt64, vectors: inout ClusteredVectors) -> [PreparedDocument] {
        var g = SplitMix64(seed: 99 &+ version)
        return range.map { i in
            let chunks = (0..<(1 + i % 3)).map { _ in (0..<8).map { _ in words[Int(g.next() % UInt64(words.count))] }.joined(separator: " ") }
            let metadata: Metadata = ["n": .number(Double(i % 7)), "group": .string(i % 2 == 0 ? "even" : "odd"), "flag": .bool(i % 3 == 0),
                                      "title": .string("Title \(words[i % words.count])")]
            return PreparedDocument(id: "d\(i)", metadata: metadata, contentHash: UInt64(i) &* 31 &+ version, chunks: chunks,
                                    embeddings: vectors.points(chunks.count))
        }
    }

    /// Every answer of `index` to a fixed set of searches.
    static func answers(_ index: PartitionIndex, queries: [[Float]]) throws -> [String] {
        var out: [String] = []
        let filter = MetadataFilter.compare(key: "group", op: .eq, values: [.string("even")])
        for (i, q) in queries.enumerated() {
            for f in [nil, filter] {
                out.append(try index.vectorSearch(q, k: 10, filter: f).map { "\($0.key) \($0.score)" }.joined(separator: ","))
                let terms = Tokenizer.terms("\(words[i % words.count]) \(words[(i * 5 + 1) % words.count]) title")
                out.append(try index.keywordSearch(terms, stats: index.keywordStats(terms), k: 10, filter: f).map { "\($0.key) \($0.score)" }.joined(separator: ","))
            }
        }
        return out + ["\(index.documentCount) \(index.chunkCount) \(index.documentIDs.sorted())"]
    }

    static func image(_ index: PartitionIndex, _ stamp: ImageStamp) -> Data { index.image(stamp: stamp)!.parts.reduce(Data(), +) }

    @Test(arguments: kinds()) func anImageReadsBackAsTheSameIndex(kind: VectorIndexKind) throws {
        var vectors = ClusteredVectors(dimension: Self.dimension, centres: 8, seed: 5)
        let index = PartitionIndex(dimension: Self.dimension, partition: 2, kind: kind, keepsTexts: false)
        var texts: [String: [String]] = [:]
        func write(_ docs: [PreparedDocument], into targets: [PartitionIndex]) {
            for d in docs {
                for t in targets { t.upsert(d, replacing: texts[d.id]) }
                texts[d.id] = d.chunks
            }
        }
        write(Self.documents(0..<300, version: 1, vectors: &vectors), into: [index])
        // Replaced and deleted documents leave free slots and free documents behind.
        write(Self.documents(40..<80, version: 2, vectors: &vectors), into: [index])
        for i in stride(from: 100, to: 160, by: 3) { index.remove("d\(i)", chunks: texts.removeValue(forKey: "d\(i)")) }
        let queries = vectors.points(12)
        let stamp = ImageStamp(lineage: -42, generation: 7)
        let bytes = Self.image(index, stamp)

        let (read, readStamp) = try #require(PartitionIndex.decodeImage(bytes, partition: 2, dimension: Self.dimension, kinds: [kind], vectorBacking: .memory))
        #expect(readStamp == stamp)
        #expect(read.kind == kind)
        #expect(try Self.answers(read, queries: queries) == Self.answers(index, queries: queries))
        // The same writes to both afterwards: still the same index.
        write(Self.documents(150..<170, version: 3, vectors: &vectors) + Self.documents(300..<330, version: 1, vectors: &vectors), into: [index, read])
        #expect(try Self.answers(read, queries: queries) == Self.answers(index, queries: queries))

        // Another kind, dimension or a damaged byte anywhere: refused.
        let other: VectorIndexKind = kind == .flat ? .int8 : .flat
        #expect(PartitionIndex.decodeImage(bytes, partition: 2, dimension: Self.dimension, kinds: [other], vectorBacking: .memory) == nil)
        #expect(PartitionIndex.decodeImage(bytes, partition: 2, dimension: Self.dimension + 1, kinds: [kind], vectorBacking: .memory) == nil)
        var g = SplitMix64(seed: 3)
        for _ in 0..<60 {
            var damaged = bytes
            let at = Int(g.next() % UInt64(bytes.count))
            damaged[at] ^= UInt8(1 + g.next() % 255)
            #expect(PartitionIndex.decodeImage(damaged, partition: 2, dimension: Self.dimension, kinds: [kind], vectorBacking: .memory) == nil, "byte \(at)")
            let cut = bytes.prefix(Int(g.next() % UInt64(bytes.count)))
            #expect(PartitionIndex.decodeImage(cut, partition: 2, dimension: Self.dimension, kinds: [kind], vectorBacking: .memory) == nil)
        }
    }

    /// A graph walking int8 codes with its floats in a kept file: the image
    /// holds the codes and names the file, whose rows are mapped again, not
    /// copied. A missing or short file, or a file of another partition, is refused.
    @Test func keptVectorFilesAreMappedAgain() throws {
        let dir = NSTemporaryDirectory() + "image-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let backing = VectorBacking.keptFile(prefix: dir + "/p000.sqlite-vectors-")
        let kind = VectorIndexKind.hnsw(HNSWSettings(m: 8, efConstruction: 40, ef: 40, quantized: true))
        var vectors = ClusteredVectors(dimension: Self.dimension, centres: 8, seed: 9)
        let index = PartitionIndex(dimension: Self.dimension, partition: 0, kind: kind, keepsTexts: false, vectorBacking: backing)
        for d in Self.documents(0..<200, version: 1, vectors: &vectors) { index.upsert(d) }
        let saved = try #require(index.image(stamp: ImageStamp(lineage: 1, generation: 2)))
        defer { if saved.vectorDescriptor >= 0 { close(saved.vectorDescriptor) } }
        let file = try #require(saved.vectorFile)
        #expect(file == index.vectorFile && saved.vectorDescriptor >= 0)
        let bytes = saved.parts.reduce(Data(), +)
        let nodes = try #require(index.graphNodes).nodes
        // The same index with its floats in memory: its image holds them (4 bytes each, not a code's 1).
        let reference = PartitionIndex(dimension: Self.dimension, partition: 0, kind: kind, keepsTexts: false)
        var again = ClusteredVectors(dimension: Self.dimension, centres: 8, seed: 9)
        for d in Self.documents(0..<200, version: 1, vectors: &again) { reference.upsert(d) }
        #expect(bytes.count + nodes * Self.dimension * 3 <= Self.image(reference, ImageStamp(lineage: 1, generation: 2)).count)
        // Rows appended after the save are not the image's.
        let later = Self.documents(200..<220, version: 1, vectors: &vectors)
        for d in later { index.upsert(d) }
        let queries = vectors.points(10)
        let (read, _) = try #require(PartitionIndex.decodeImage(bytes, partition: 0, dimension: Self.dimension, kinds: [kind], vectorBacking: backing))
        #expect(read.vectorFile == file && read.graphNodes?.nodes == nodes)
        // The same later writes after the reopen: the same answers as the index that never left memory.
        for d in later {
            read.upsert(d)
            reference.upsert(d)
        }
        #expect(try Self.answers(read, queries: queries) == Self.answers(reference, queries: queries))

        let decode = { (b: VectorBacking) in PartitionIndex.decodeImage(bytes, partition: 0, dimension: Self.dimension, kinds: [kind], vectorBacking: b) }
        #expect(decode(.keptFile(prefix: dir + "/p001.sqlite-vectors-")) == nil)
        #expect(decode(.memory) == nil)
        #expect(truncate(file, off_t(nodes * Self.dimension * 4 - 4)) == 0)
        #expect(decode(backing) == nil)
        #expect(unlink(file) == 0)
        #expect(decode(backing) == nil)
    }

    /// Chunks a start reloads wait beside the graph (`defersGraphInserts`):
    /// searched exactly, filters applied, deletes honoured, no image saved
    /// until they are linked; linking them in batches keeps every answer.
    @Test func chunksWaitingForTheGraphAreSearchedExactly() throws {
        var vectors = ClusteredVectors(dimension: Self.dimension, centres: 8, seed: 12)
        let kind = VectorIndexKind.hnsw(HNSWSettings(m: 8, efConstruction: 40, ef: 40))
        let index = PartitionIndex(dimension: Self.dimension, partition: 0, kind: kind, keepsTexts: false)
        for d in Self.documents(0..<200, version: 1, vectors: &vectors) { index.upsert(d) }
        index.defersGraphInserts = true
        let later = Self.documents(200..<260, version: 1, vectors: &vectors)
        for d in later { index.upsert(d) }
        for i in 250..<260 { index.remove("d\(i)", chunks: later[i - 200].chunks) }
        index.defersGraphInserts = false
        let waiting = later.prefix(50).reduce(0) { $0 + $1.chunks.count }
        #expect(index.pendingGraphInserts == waiting)
        #expect(index.image(stamp: ImageStamp(lineage: 1, generation: 1)) == nil)
        let even = MetadataFilter.compare(key: "group", op: .eq, values: [.string("even")])
        func check() throws {
            for (n, d) in later.enumerated() {
                let hits = try index.vectorSearch(d.embeddings[0], k: 3)
                if n < 50 {
                    // Its own vector: that chunk first, at the exact score.
                    #expect(hits.first?.key == ChunkKey(documentID: d.id, ordinal: 0))
                    #expect(hits.first.map { abs($0.score - Double(VectorMath.dot(d.embeddings[0], d.embeddings[0]))) < 1e-6 } == true)
                    let filtered = try index.vectorSearch(d.embeddings[0], k: 3, filter: even)
                    #expect(filtered.allSatisfy { $0.metadata["group"] == .string("even") })
                    #expect((filtered.first?.key.documentID == d.id) == (d.metadata["group"] == .string("even")))
                } else {
                    #expect(!hits.contains { $0.key.documentID == d.id })
                }
            }
        }
        try check()
        var left = waiting
        while left > 0 {
            let next = index.insertPending(limit: 7)
            #expect(next == max(0, left - 7))
            left = next
        }
        try check()
        #expect(index.image(stamp: ImageStamp(lineage: 1, generation: 1)) != nil)
    }

    /// An image too old to use whole still gives its graph to adopt.
    @Test func anImagesGraphCanBeAdoptedAlone() throws {
        var vectors = ClusteredVectors(dimension: Self.dimension, centres: 8, seed: 6)
        let settings = HNSWSettings(m: 8, efConstruction: 40, ef: 40)
        let index = PartitionIndex(dimension: Self.dimension, partition: 0, kind: .hnsw(settings), keepsTexts: false)
        let docs = Self.documents(0..<120, version: 1, vectors: &vectors)
        for d in docs { index.upsert(d) }
        let graph = try #require(PartitionIndex.imageGraph(Self.image(index, ImageStamp(lineage: 1, generation: 1)), dimension: Self.dimension))
        let fresh = PartitionIndex(dimension: Self.dimension, partition: 0, kind: .hnsw(settings), keepsTexts: false)
        #expect(fresh.adoptGraph(graph))
        for d in docs { fresh.upsert(d) }
        #expect(fresh.finishGraphAdoption() == (docs.reduce(0) { $0 + $1.chunks.count }, 0))
        #expect(PartitionIndex.imageGraph(Self.image(PartitionIndex(dimension: Self.dimension, partition: 0, kind: .flat, keepsTexts: false),
                                                     ImageStamp(lineage: 1, generation: 1)), dimension: Self.dimension) == nil)
    }
}

extension VectorIndexKind: CustomTestStringConvertible {
    public var testDescription: String {
        if case .hnsw(let s) = self { return s.quantized ? "hnsw-int8" : "hnsw" }
        return name
    }
}
