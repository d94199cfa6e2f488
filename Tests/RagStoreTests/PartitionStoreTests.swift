import Foundation
import RagCore
import RagEngine
import RagStore
import Testing

@Suite struct PartitionStoreTests {
    let dir = NSTemporaryDirectory() + "ragstore-\(UUID().uuidString)"

    func prepared(_ id: String, _ chunks: [String], _ meta: Metadata = [:]) -> PreparedDocument {
        PreparedDocument(id: id, metadata: meta, contentHash: StableHash.fnv1a(id + chunks.joined()), chunks: chunks,
                         embeddings: chunks.enumerated().map { i, _ in [Float(i), 0.5, -1.25] })
    }

    func loaded(_ store: PartitionStore) throws -> [PreparedDocument] {
        var docs: [PreparedDocument] = []
        try store.loadAll { docs.append($0) }
        return docs
    }

    /// Texts for query answers come from a connection of their own: each call
    /// sees the last commit, a text is given only for the content hash asked,
    /// and after close the reader refuses instead of reading a closed file.
    @Test func chunkTextsAreReadForTheVersionAsked() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try PartitionStore(path: dir + "/p000.sqlite")
        let v1 = prepared("a", ["first one", "second one"])
        try store.write(upserts: [v1, prepared("b", ["other"])])
        let k0 = ChunkKey(documentID: "a", ordinal: 0), k1 = ChunkKey(documentID: "a", ordinal: 1)
        #expect(try store.texts([k0: v1.contentHash, k1: v1.contentHash]) == [k0: "first one", k1: "second one"])
        let v2 = prepared("a", ["first two"])
        try store.write(upserts: [v2])
        #expect(try store.texts([k0: v1.contentHash, k1: v1.contentHash]).isEmpty, "the old version's texts are gone")
        #expect(try store.texts([k0: v2.contentHash, k1: v2.contentHash]) == [k0: "first two"])
        #expect(try store.chunkTexts(["a", "b", "missing"]) == ["a": ["first two"], "b": ["other"]])
        try store.write(upserts: [], deletes: ["a"])
        #expect(try store.texts([k0: v2.contentHash]).isEmpty)
        #expect(try store.documents(["b", "a"]).map(\.id) == ["b"])
        try store.close()
        #expect(throws: RagError.self) { try store.texts([k0: v2.contentHash]) }
    }

    /// The replication log: entries in order with the write they came with,
    /// the applied number durable across a reopen, and cut by entries and by bytes.
    @Test func replicationLogKeepsTheNewestEntries() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/p001.sqlite"
        let payload = Data(repeating: 7, count: 10_000)
        do {
            let store = try PartitionStore(path: path)
            for seq in 1...200 as ClosedRange<UInt64> {
                try store.write(upserts: [prepared("d\(seq % 5)", ["v\(seq)"])], entry: LogEntry(seq: seq, version: 2, payload: payload),
                                keep: LogRetention(entries: 150, bytes: 100_000))
            }
            try store.close()
        }
        let store = try PartitionStore(path: path)
        #expect(try store.applied() == (200, 2))
        let entries = try store.entries(after: 0, maxBytes: 1 << 30)
        // Cut at the 192nd write (every 64, and at the end of each 64): about 100 kB of the newest, in order.
        #expect(entries.map(\.seq) == Array(183...200))
        #expect(entries.reduce(0) { $0 + $1.payload.count } <= 100_000 + payload.count * 8)
        #expect(try store.firstLogged() == 183)
        #expect(try store.version(of: 190) == 2 && store.version(of: 100) == nil)
        #expect(try loaded(store).count == 5)
        try store.setApplied(seq: 500, version: 3)
        #expect(try store.applied() == (500, 3) && store.firstLogged() == 0)
    }

    @Test func writesSurviveReopenExactly() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/p000.sqlite"
        do {
            let store = try PartitionStore(path: path)
            try store.write(upserts: [prepared("b", ["one", "two"], ["lang": .string("en"), "n": .number(3), "ok": .bool(true)]),
                                      prepared("a", ["solo"])])
            try store.close()
        }
        let reopened = try PartitionStore(path: path)
        let docs = try loaded(reopened)
        #expect(docs.map(\.id) == ["a", "b"])
        #expect(docs[1].chunks == ["one", "two"])
        #expect(docs[1].embeddings == [[0, 0.5, -1.25], [1, 0.5, -1.25]])
        #expect(docs[1].metadata == ["lang": .string("en"), "n": .number(3), "ok": .bool(true)])
        #expect(docs[1].contentHash == StableHash.fnv1a("b" + "onetwo"))
        // WAL mode: the journal file exists beside the database.
        #expect(try String(decoding: Data(contentsOf: URL(fileURLWithPath: path)).prefix(16), as: UTF8.self).hasPrefix("SQLite format 3"))
    }

    @Test func sourceTextsAreKeptOnDiskAndInflateExactly() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let texts = ["", "plain", "Ünïcödé 日本語 🙂 " + String(repeating: "man page paragraph. ", count: 5_000)]
        for t in texts { #expect(try SourceText.decompress(SourceText.compress(t)) == t) }
        let big = SourceText.compress(texts[2])
        #expect(big.count < texts[2].utf8.count / 10, "repetitive text deflates: \(big.count) bytes")
        // Corrupt or hostile bytes are DATA_LOSS, never a crash or a huge allocation.
        for bad in [Data(), Data([1, 2]), Data([0xFF, 0xFF, 0xFF, 0x7F, 0x78, 0x9C]), big.prefix(big.count / 2)] {
            #expect(throws: RagError.self) { _ = try SourceText.decompress(bad) }
        }
        let path = dir + "/p.sqlite"
        do {
            let store = try PartitionStore(path: path)
            var a = prepared("a", ["one"])
            a.source = SourceText.compress("the original text of a")
            try store.write(upserts: [a, prepared("b", ["two"])])
            try store.close()
        }
        let store = try PartitionStore(path: path)
        let sources = try store.sources(["a", "b", "missing"])
        #expect(Array(sources.keys) == ["a"])
        #expect(try SourceText.decompress(sources["a"]!) == "the original text of a")
        // The in-memory load never carries sources.
        #expect(try loaded(store).allSatisfy { $0.source.isEmpty })
    }

    /// Each write takes the next generation and journals the documents it
    /// touched; the journal answers "what changed since g" while it reaches
    /// back to g, and not for another file, a generation ahead of this file,
    /// or one below where it was cut.
    @Test func theJournalNamesWhatChangedSinceAGeneration() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var store = try PartitionStore(path: dir + "/p000.sqlite")
        let start = store.generation
        #expect(start.number == 0 && start.floor == 0)
        try store.write(upserts: [prepared("a", ["one"]), prepared("b", ["two"])])
        try store.write(upserts: [prepared("c", ["three"])], deletes: ["a"])
        try store.write(upserts: [], deletes: ["missing"])
        #expect(store.generation.number == 3)
        #expect(try store.changed(since: 0, lineage: start.lineage) == ["a", "b", "c", "missing"])
        #expect(try store.changed(since: 1, lineage: start.lineage) == ["a", "c", "missing"])
        #expect(try store.changed(since: 3, lineage: start.lineage) == [])
        #expect(try store.changed(since: 4, lineage: start.lineage) == nil)
        #expect(try store.changed(since: 0, lineage: start.lineage &+ 1) == nil)
        try store.trimJournal(through: 2)
        #expect(try store.changed(since: 1, lineage: start.lineage) == nil)
        #expect(try store.changed(since: 2, lineage: start.lineage) == ["missing"])
        // Across a reopen: the same lineage, generation and floor.
        try store.close()
        store = try PartitionStore(path: dir + "/p000.sqlite")
        #expect(store.generation == Generation(lineage: start.lineage, number: 3, floor: 2))
        #expect(try store.changed(since: 2, lineage: start.lineage) == ["missing"])
        // Another file has a lineage of its own.
        let other = try PartitionStore(path: dir + "/p001.sqlite")
        #expect(other.generation.lineage != start.lineage)
        try other.close()
        try store.close()
    }

    @Test func replaceAndDelete() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try PartitionStore(path: dir + "/p.sqlite")
        try store.write(upserts: [prepared("a", ["1", "2", "3"]), prepared("b", ["x"])])
        try store.write(upserts: [prepared("a", ["new"])])
        #expect(try store.chunkCount() == 2)
        let deleted = try store.write(upserts: [], deletes: ["b", "missing"])
        #expect(deleted == ["b"])
        let docs = try loaded(store)
        #expect(docs.map(\.id) == ["a"])
        #expect(docs[0].chunks == ["new"])
    }

    @Test func catalogRecordsCollectionsAndGenerations() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try Catalog(path: dir + "/catalog.sqlite")
        try catalog.insert(CollectionInfo(name: "docs", embedder: "hashing-v1-384", dimension: 384, partitions: 4))
        try await catalog.bumpGeneration("docs")
        try await catalog.bumpGeneration("docs")
        let again = try Catalog(path: dir + "/catalog.sqlite")
        #expect(try again.all().map(\.generation) == [2])
        #expect(throws: RagError.self) { try again.insert(CollectionInfo(name: "docs", embedder: "e", dimension: 1, partitions: 1)) }
    }
}
