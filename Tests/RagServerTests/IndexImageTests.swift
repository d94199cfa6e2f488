import Foundation
import RagClient
import RagCore
import RagEngine
import RagTesting
import Testing

/// Index images: a partition saves its whole index (documents, postings,
/// vectors or graph) beside its SQLite file, and a start reads it back and
/// reloads only the documents the journal names as written since. Each start
/// is compared with a server that rebuilt everything from SQLite alone.
@Suite(.serialized) struct IndexImageTests {
    typealias Answer = [String]

    /// Every query's answer in three modes: chunk ids with scores, in order.
    static func answers(_ c: RagClient, _ collection: String) async throws -> [Answer] {
        var out: [Answer] = []
        for (q, filter) in ClusterCorpus.queries.prefix(30) + [("amended revision zephyr", nil)] {
            for mode in [SearchMode.keyword, .vector, .hybrid] {
                let r = try await c.query(q, collection: collection, topK: 10, filter: filter, mode: mode, noCache: true, timeout: hangGuard)
                out.append(r.sources.map { "\(mode) \($0.chunkID) \($0.score)" })
            }
        }
        return out
    }

    /// How many partitions opened from their image, and the documents they reloaded.
    static func opened(_ server: RagdProcess) -> (images: Int, reloaded: Int, full: Int) {
        var images = 0, reloaded = 0, full = 0
        for line in server.log.split(separator: "\n") where line.contains("partition kb/") {
            if let r = line.firstRange(of: "read its index image, ") {
                images += 1
                reloaded += Int(line[r.upperBound...].prefix { $0.isNumber }) ?? 0
            } else if line.contains("loaded from SQLite") {
                full += 1
            }
        }
        return (images, reloaded, full)
    }

    /// The first answer that differs, for the failure message (nil: the same).
    static func difference(_ a: [Answer], _ b: [Answer]) -> String? {
        guard a != b else { return nil }
        guard let i = zip(a, b).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset else { return "\(a.count) answers, not \(b.count)" }
        return "answer \(i): \(a[i]) vs \(b[i])"
    }

    /// The keyword answers alone (every third: `answers` asks keyword, vector, hybrid).
    static func keyword(_ a: [Answer]) -> [Answer] { a.enumerated().filter { $0.offset % 3 == 0 }.map(\.element) }

    static func images(_ dir: String) -> [String] {
        (0..<4).map { String(format: "%@/collections/kb/p%03d.sqlite-image", dir, $0) }
    }

    @Test(arguments: ["exact", "int8", "hnsw"]) func imagesReopenAsARebuildWould(index: String) async throws {
        let dir = makeTemporaryDirectory(), copy = makeTemporaryDirectory()
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: copy)
        }
        let flags = ["--log-level", "info", "--hnsw-save-every", "60", "--hnsw-walk", "int8"]
        var server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: flags)
        defer { server.kill9() }
        var c = server.client()
        let docs = ClusterCorpus.documents
        for start in stride(from: 0, to: docs.count, by: 50) {
            _ = try await c.index(Array(docs[start..<min(start + 50, docs.count)]), collection: "kb", index: index, timeout: hangGuard)
        }
        let before = try await Self.answers(c, "kb")

        // A clean stop saves every partition's image; the start reads them and nothing else.
        await c.close()
        #expect(await server.stop() == 0)
        #expect(Self.images(dir).allSatisfy { FileManager.default.fileExists(atPath: $0) })
        server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: flags)
        c = server.client()
        #expect(Self.opened(server) == (4, 0, 0), "\(server.log)")
        let reread = try await Self.answers(c, "kb")
        #expect(Self.difference(reread, before) == nil)

        // Writes after the last save (fewer than a save's interval), then kill -9:
        // replaced, deleted and new documents are reloaded from SQLite.
        let replaced = docs.suffix(12).map { RagDocument(id: $0.id, text: "An amended revision zephyr of \($0.id): " + $0.text, metadata: $0.metadata) }
        let deleted = docs.prefix(30).suffix(8).map(\.id)
        let added = (0..<6).map { RagDocument(id: "new-\($0)", text: "A new zephyr page \($0) about cache latency.", metadata: ["n": .number(Double($0))]) }
        _ = try await c.index(replaced + added, collection: "kb", timeout: hangGuard)
        _ = try await c.delete(deleted, collection: "kb", timeout: hangGuard)
        await c.close()
        server.kill9()
        server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: flags)
        c = server.client()
        let opened = Self.opened(server)
        #expect(opened.images == 4 && opened.full == 0 && opened.reloaded == replaced.count + added.count + deleted.count, "\(opened)")
        let after = try await Self.answers(c, "kb")
        #expect(after != before)
        let returned = after.joined().joined(separator: "\n")
        for id in deleted { #expect(!returned.contains(" \(id)#"), "deleted \(id) returned") }
        #expect(returned.contains(" new-"))

        // The same files without images: a rebuild from SQLite gives the same answers.
        await c.close()
        #expect(await server.stop() == 0)
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: dir, toPath: copy)
        for f in Self.images(copy) { try FileManager.default.removeItem(atPath: f) }
        server = try await RagdProcess.launch(dataDirectory: copy, extraArguments: flags)
        c = server.client()
        #expect(Self.opened(server) == (0, 0, 4))
        let rebuilt = try await Self.answers(c, "kb")
        await c.close()
        #expect(await server.stop() == 0)
        if index == "hnsw" {
            // A graph built again links differently: the same documents, close to the same vector ranking.
            #expect(Self.difference(Self.keyword(rebuilt), Self.keyword(after)) == nil)
            let same = zip(after, rebuilt).map { Set($0).intersection($1).count }.reduce(0, +)
            #expect(Double(same) / Double(after.map(\.count).reduce(0, +)) >= 0.85)
        } else {
            #expect(Self.difference(rebuilt, after) == nil)
        }

        // A damaged image is refused: that partition loads from SQLite, the answers stay.
        let victim = Self.images(dir)[1]
        let h = try #require(FileHandle(forUpdatingAtPath: victim))
        let size = try h.seekToEnd()
        try h.seek(toOffset: size * 2 / 3)
        let byte = try #require(try h.read(upToCount: 1))
        try h.seek(toOffset: size * 2 / 3)
        try h.write(contentsOf: Data([byte[0] ^ 0x5A]))
        try h.close()
        server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: flags)
        c = server.client()
        #expect(Self.opened(server) == (3, 0, 1))
        let reopened = try await Self.answers(c, "kb")
        // With a graph, that partition's graph may be built again (the damage may be in it).
        #expect(index == "hnsw" ? Self.difference(Self.keyword(reopened), Self.keyword(after)) == nil : Self.difference(reopened, after) == nil)
        await c.close()
        // A stop with nothing written since leaves the images that were read as they
        // are, and saves the one that was refused (deleted at the start) anew.
        let inodes = { Self.images(dir).map { (try? FileManager.default.attributesOfItem(atPath: $0)[.systemFileNumber] as? UInt64) ?? nil } }
        let kept = inodes()
        #expect(kept[1] == nil && kept.compactMap { $0 }.count == 3)
        #expect(await server.stop() == 0)
        let saved = inodes()
        #expect(saved[1] != nil && [0, 2, 3].allSatisfy { saved[$0] == kept[$0] }, "\(kept) \(saved)")
    }
}
