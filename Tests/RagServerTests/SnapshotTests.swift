import Foundation
import RagClient
import RagCore
import RagTesting
import RagWire
import Synchronization
import Testing

/// Snapshots on a single server: consistent while writes run, atomic restore
/// over a live collection, damaged archives refused with nothing changed.
@Suite struct SnapshotTests {
    /// Where an entry's bytes start in a tar archive (the test reads headers itself).
    static func offset(of entry: String, in archive: Data) -> Int? {
        var at = 0
        while at + 512 <= archive.count {
            let header = archive[at..<at + 512]
            if header.allSatisfy({ $0 == 0 }) { return nil }
            let name = String(decoding: header.prefix(100).prefix { $0 != 0 }, as: UTF8.self)
            let size = Int(String(decoding: header.dropFirst(124).prefix(11), as: UTF8.self), radix: 8) ?? 0
            if name == entry { return at + 512 }
            at += 512 + (size + 511) / 512 * 512
        }
        return nil
    }

    /// A writer adds three documents per call, one call after another, while a
    /// snapshot is taken: the restored copy holds the first n calls whole, for
    /// some n, and nothing of the others (a consistent point across partitions);
    /// it answers exactly as a fresh index of those documents does.
    @Test func aSnapshotTakenWhileWritesRunRestoresToThatPoint() async throws {
        try await withServer { c in
            let base = Array(ReindexTests.documents.prefix(120))
            try await ReindexTests.index(base, into: "kb", c)
            @Sendable func batch(_ i: Int) -> [RagDocument] {
                (0..<3).map { j in RagDocument(id: "w-\(i)-\(j)", text: "Write \(i) part \(j): ledger quota spool \(i * 3 + j). " + String(repeating: "filler words \(j) ", count: 10)) }
            }
            let (snap, n) = try await Self.snapshotWhileWriting(c, holding: base.count, batch: batch)
            // Restored under another name (so documents move to that name's partitions).
            let restored = try await c.restoreSnapshot(snap.name, into: "copy", timeout: hangGuard)
            #expect(restored.documents == UInt64(base.count + 3 * n) && restored.collection == "copy")
            for i in [0, n - 1] {
                let r = try await c.query("ledger quota spool \(i * 3 + 1)", collection: "copy", topK: 1, mode: .keyword, timeout: hangGuard)
                #expect(r.sources.first?.documentID == "w-\(i)-1")
            }
            let later = try await c.query("ledger quota spool \(n * 3 + 1)", collection: "copy", topK: 5, mode: .keyword, timeout: hangGuard)
            #expect(!later.sources.contains { $0.documentID.hasPrefix("w-\(n)-") })
            try await ReindexTests.index(base + (0..<n).flatMap(batch), into: "fresh", c)
            let copyStats = try await ReindexTests.counts("copy", c), freshStats = try await ReindexTests.counts("fresh", c)
            #expect(copyStats.documents == freshStats.documents && copyStats.chunks == freshStats.chunks)
            let copyAnswers = try await ReindexTests.answers("copy", c), freshAnswers = try await ReindexTests.answers("fresh", c)
            #expect(copyAnswers == freshAnswers)
            #expect(try await c.listSnapshots(timeout: hangGuard).map(\.name) == [snap.name])
        }
    }

    /// Takes a snapshot of "kb" while a writer adds `batch(i)` (three documents)
    /// per call, one call after another, with calls acknowledged before it and
    /// calls still coming after it. Returns the snapshot and how many calls it
    /// holds, having checked that it holds whole calls only.
    static func snapshotWhileWriting(_ c: RagClient, holding base: Int, batch: @escaping @Sendable (Int) -> [RagDocument]) async throws -> (Ragd_V1_SnapshotInfo, Int) {
        let done = Atomic<Int>(0)
        let writer = Task {
            var i = 0
            while !Task.isCancelled {
                do { _ = try await c.index(batch(i), collection: "kb", timeout: hangGuard) } catch { break }
                i += 1
                done.store(i, ordering: .relaxed)
            }
        }
        #expect(await eventually(seconds: 60) { done.load(ordering: .relaxed) >= 5 })
        let snap = try await c.createSnapshot(collection: "kb", timeout: hangGuard).snapshot
        let n = (Int(snap.documents) - base) / 3
        #expect(Int(snap.documents) == base + 3 * n, "whole writes only: \(snap.documents)")
        #expect(await eventually(seconds: 60) { done.load(ordering: .relaxed) >= n + 3 })
        writer.cancel()
        _ = await writer.value
        #expect(n >= 5, "the snapshot holds the writes acknowledged before it: \(n)")
        return (snap, n)
    }

    /// A ragd process of its own (writers and readers here run in tight loops).
    func withServer(_ body: (RagClient) async throws -> Void) async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await RagdProcess.launch(dataDirectory: dir)
        let c = server.client()
        do { try await body(c) } catch {
            await c.close()
            _ = await server.stop()
            throw error
        }
        await c.close()
        _ = await server.stop()
    }

    /// Restoring over a collection that queries are reading: every answer
    /// comes wholly from the old documents or wholly from the restored ones.
    @Test func restoreOverALiveCollectionIsAtomic() async throws {
        try await withServer { c in
            let old = (0..<30).map { RagDocument(id: "a-\($0)", text: "alphaonly record \($0) of the first state. " + String(repeating: "common words ", count: 8)) }
            let new = (0..<30).map { RagDocument(id: "b-\($0)", text: "zebraquux record \($0) of the second state. " + String(repeating: "common words ", count: 8)) }
            _ = try await c.index(old + Array(ReindexTests.documents.prefix(60)), collection: "kb", timeout: hangGuard)
            let snap = try await c.createSnapshot(collection: "kb", timeout: hangGuard).snapshot
            _ = try await c.delete(old.map(\.id), collection: "kb", timeout: hangGuard)
            _ = try await c.index(new, collection: "kb", timeout: hangGuard)
            let readers = (0..<3).map { _ in
                Task { () -> (answers: Int, mixed: [String], failed: [String]) in
                    var answers = 0, mixed: [String] = [], failed: [String] = []
                    while !Task.isCancelled {
                        do {
                            let r = try await c.query("alphaonly zebraquux", collection: "kb", topK: 40, mode: .keyword, noCache: true, timeout: hangGuard)
                            let prefixes = Set(r.sources.map { String($0.documentID.prefix(2)) })
                            if prefixes != ["a-"] && prefixes != ["b-"] { mixed.append("\(prefixes.sorted())") }
                            answers += 1
                        } catch where !Task.isCancelled { failed.append("\(error)") } catch {}
                    }
                    return (answers, mixed, failed)
                }
            }
            // Readers are running before the restore and go on after it.
            try await Task.sleep(for: .milliseconds(300))
            let restored = try await c.restoreSnapshot(snap.name, timeout: hangGuard)
            #expect(restored.collection == "kb" && restored.documents == 90)
            try await Task.sleep(for: .milliseconds(300))
            var answers = 0
            for r in readers {
                r.cancel()
                let v = await r.value
                answers += v.answers
                #expect(v.mixed.isEmpty, "mixed answers: \(v.mixed.prefix(3))")
                #expect(v.failed.isEmpty, "\(v.failed.prefix(3))")
            }
            #expect(answers > 3)
            let after = try await c.query("alphaonly zebraquux", collection: "kb", topK: 40, mode: .keyword, noCache: true, timeout: hangGuard)
            #expect(after.sources.allSatisfy { $0.documentID.hasPrefix("a-") } && after.sources.count == 30)
            // Writes after the restore go to the restored storage.
            _ = try await c.index([RagDocument(id: "late", text: "written after the restore")], collection: "kb", timeout: hangGuard)
            #expect(try await ReindexTests.counts("kb", c).documents == 91)
        }
    }

    /// A flipped byte in a partition file or in the manifest, and a truncated
    /// archive, are refused with DATA_LOSS naming what failed; nothing changes.
    @Test func aDamagedArchiveIsRefused() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await withServer { c in
            _ = try await c.index(Array(ReindexTests.documents.prefix(40)), collection: "kb", timeout: hangGuard)
            let snap = try await c.createSnapshot(collection: "kb", timeout: hangGuard).snapshot
            let good = dir + "/good.ragsnap"
            #expect(try await c.downloadSnapshot(snap.name, to: good, timeout: hangGuard) == snap.bytes)
            let archive = try #require(FileManager.default.contents(atPath: good))
            let before = try await ReindexTests.answers("kb", c)
            func damaged(_ name: String, _ change: (inout Data) -> Void) throws -> String {
                var d = archive
                change(&d)
                let path = "\(dir)/\(name).ragsnap"
                try d.write(to: URL(fileURLWithPath: path))
                return path
            }
            let p1 = try #require(Self.offset(of: "p001.sqlite", in: archive))
            let m = try #require(Self.offset(of: "manifest.json", in: archive))
            let cases: [(String, String)] = [
                (try damaged("flipped") { $0[p1 + 5000] ^= 0x40 }, "p001.sqlite failed its checksum"),
                (try damaged("manifest") { $0[m + 20] ^= 0x01 }, "manifest.json failed its checksum"),
                (try damaged("truncated") { $0 = $0.prefix($0.count / 2) }, "truncated"),
            ]
            for (path, reason) in cases {
                let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
                do {
                    _ = try await c.uploadSnapshot(path, as: name, timeout: hangGuard)
                    Issue.record("\(name) was accepted")
                } catch {
                    let e = RagError(from: error)
                    #expect(e.code == .dataLoss && e.message.contains(reason), "\(name): \(e)")
                }
            }
            #expect(try await c.listSnapshots(timeout: hangGuard).map(\.name) == [snap.name])
            // The good one uploads, and restores over the collection.
            #expect(try await c.uploadSnapshot(good, as: "copy-of-good", timeout: hangGuard).documents == 40)
            #expect(try await c.restoreSnapshot("copy-of-good", into: "kb", timeout: hangGuard).documents == 40)
            let after = try await ReindexTests.answers("kb", c)
            #expect(after == before)
            // Bad requests.
            #expect(await code { _ = try await c.restoreSnapshot("nope", timeout: hangGuard) } == .notFound)
            #expect(await code { _ = try await c.restoreSnapshot("../etc", timeout: hangGuard) } == .invalidArgument)
            #expect(await code { _ = try await c.restoreSnapshot(snap.name, into: "bad name", timeout: hangGuard) } == .invalidArgument)
            #expect(await code { _ = try await c.createSnapshot(collection: "nope", timeout: hangGuard) } == .notFound)
            #expect(await code { _ = try await c.uploadSnapshot(good, as: snap.name, timeout: hangGuard) } == .alreadyExists)
            try await c.deleteSnapshot(snap.name, timeout: hangGuard)
            #expect(await code { try await c.deleteSnapshot(snap.name, timeout: hangGuard) } == .notFound)
        }
    }
}
