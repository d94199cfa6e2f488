import Foundation
import GRDB
import RagCore
import RagEngine
@testable import RagServer
import RagTesting
import Synchronization
import Testing

/// Searches of one partition run side by side and never queue behind a write:
/// the write's commit happens outside the index lock, its in-memory swap inside.
/// Hits carry no text; texts read afterwards are those of the version scored.
@Suite struct ConcurrentReadTests {
    static let dimension = 8

    static func document(_ i: Int, version: Int) -> PreparedDocument {
        // Three chunks of one version: a search must never see two versions of one document.
        let chunks = (0..<3).map { c in "version\(version) chunk\(c) of document\(i) common" }
        let vectors = (0..<3).map { c -> [Float] in
            var v = (0..<dimension).map { Float(sin(Double(i * 31 + c * 7 + version * 3 + $0))) }
            VectorMath.normalize(&v)
            return v
        }
        return PreparedDocument(id: "d\(i)", metadata: ["version": .number(Double(version))], contentHash: UInt64(version),
                                chunks: chunks, embeddings: vectors)
    }

    static func version(_ h: Hit) -> Int {
        guard case .number(let v)? = h.metadata["version"] else { return -1 }
        return Int(v)
    }

    /// Reads the texts of `hits` and checks each against the version that was
    /// scored; returns how many were left out (their document changed since).
    static func checkTexts(_ hits: [Hit], _ shard: LocalShard) async throws -> Int {
        let asked = Dictionary(hits.map { ($0.key, $0.contentHash) }, uniquingKeysWith: { a, _ in a })
        let texts = try await shard.texts(asked)
        for h in hits {
            #expect(h.text.isEmpty, "the index keeps no texts")
            if let t = texts[h.key] { #expect(t.hasPrefix("version\(version(h)) chunk\(h.key.ordinal) "), "\(t) for version \(version(h))") }
        }
        return asked.count - texts.count
    }

    static func request(k: Int) -> ShardSearchRequest {
        var v = (0..<dimension).map { Float($0 + 1) }
        VectorMath.normalize(&v)
        return ShardSearchRequest(vector: v, terms: ["common"],
                                  keywordStats: KeywordStats(chunkCount: 150, totalLength: 1_000, documentFrequency: ["common": 150]), k: k, filter: nil)
    }

    /// On threads of its own: its searches wait on the index lock while a
    /// write holds it, and four of them at once would hold the cooperative
    /// pool that every in-process server of the run needs (clean-clone CI:
    /// calls to other suites' servers missed 30 s deadlines while this ran).
    @Test(arguments: ["flat", "hnsw"]) func searchesRunDuringWritesAndNeverSeeHalfAWrite(kind: String) async throws {
        try await withOwnThreads(4, name: "concurrent-read") { try await searchesRunDuringWrites(kind: kind, on: $0) }
    }

    /// While a write holds the index (a large batch going into a graph),
    /// searches, statistics and text reads wait off the cooperative pool: many
    /// more of them than the pool has threads leave it free for other calls.
    /// (They used to wait on it: two were enough to stop a two-core server.)
    @Test func searchesWaitingForAWriteLeaveTheCooperativePoolFree() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let shard = try LocalShard(path: dir + "/p000.sqlite", partition: 0, dimension: Self.dimension, synchronous: .normal)
        _ = try await shard.write(upserts: (0..<50).map { Self.document($0, version: 0) }, deletes: [])
        let holding = ThreadGate(), release = ThreadGate()
        let timedOut = Atomic<Bool>(false)
        Thread {
            shard.changingIndex {
                holding.open()
                // Released by the test, unless the pool is stuck: then by this watchdog.
                if !release.wait(seconds: 60) { timedOut.store(true, ordering: .releasing) }
            }
        }.start()
        _ = try await onThread { holding.wait() }
        let waiting = 4 * ProcessInfo.processInfo.activeProcessorCount + 4
        final class Count: Sendable { let value = Atomic<Int>(0) }
        let finished = Count()
        let searches = Task {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<waiting {
                    group.addTask {
                        defer { finished.value.add(1, ordering: .relaxed) }
                        switch i % 3 {
                        case 0: return try await shard.search(Self.request(k: 10)).keywordHits.count
                        case 1: return try await shard.keywordStats(terms: ["common"]).documentFrequency["common"] ?? 0
                        default: return try await shard.texts([ChunkKey(documentID: "d\(i)", ordinal: 0): 0]).count
                        }
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
        }
        // The pool still runs other work, and the lock-free size answers.
        for _ in 0..<20 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(shard.chunkCount == 150)
        let stuck = timedOut.load(ordering: .acquiring), done = finished.value.load(ordering: .relaxed)
        #expect(!stuck, "the cooperative pool was blocked until the watchdog released the write")
        #expect(done < waiting / 3 * 2, "searches and statistics wait for the write")
        release.open()
        let answers = try await searches.value
        #expect(answers.count == waiting)
        #expect(answers.filter { $0 == 10 }.count >= waiting / 3, "every search answers once the write is done")
        await shard.close()
    }

    func searchesRunDuringWrites(kind: String, on executor: ThreadPoolExecutor) async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/p000.sqlite"
        let shard = try LocalShard(path: path, partition: 0, dimension: Self.dimension, synchronous: .normal,
                                   vectorIndex: VectorIndexPolicy(choice: kind == "hnsw" ? .hnsw : .exact, hnsw: HNSWSettings(m: 8, efConstruction: 32, ef: 64)))
        _ = try await shard.write(upserts: (0..<50).map { Self.document($0, version: 0) }, deletes: [])

        // Another connection holds SQLite's write lock, so the next write waits
        // in its commit (up to the 5 s busy timeout). Searches meanwhile answer
        // from the state before it; had they queued behind the write, the lock
        // would never be released in time and the write would fail.
        // (On a thread of its own: it blocks, and the cooperative pool may have only two.)
        let blocker = try DatabaseQueue(path: path)
        let locked = Atomic<Int>(0)  // 1: holding the lock, 2: released, -1: failed
        let release = ThreadGate()
        Thread {
            do {
                try blocker.inDatabase { db in
                    try db.execute(sql: "BEGIN IMMEDIATE")
                    locked.store(1, ordering: .releasing)
                    release.wait()
                    try db.execute(sql: "COMMIT")
                }
                locked.store(2, ordering: .releasing)
            } catch {
                locked.store(-1, ordering: .releasing)
            }
        }.start()
        #expect(await eventually(seconds: 30) { locked.load(ordering: .acquiring) == 1 })
        let writing = Task(executorPreference: executor) { try await shard.write(upserts: (0..<50).map { Self.document($0, version: 1) }, deletes: []) }
        // Only so that the write is likely under way (waiting for the lock) when the searches run.
        try await Task.sleep(for: .milliseconds(200))
        var last: ShardSearchResult?
        for _ in 0..<20 {
            let r = try await shard.search(Self.request(k: 150))
            #expect(r.keywordHits.count == 150 && !r.vectorHits.isEmpty)
            #expect(r.keywordHits.allSatisfy { Self.version($0) == 0 }, "a write that has not committed is not visible")
            last = r
        }
        // Once (the write gives up after SQLite's 5 s busy timeout): texts read meanwhile are the committed version's.
        #expect(try await Self.checkTexts(Array(last!.keywordHits.prefix(20)) + Array(last!.vectorHits.prefix(20)), shard) == 0)
        release.open()
        _ = try await writing.value
        #expect(await eventually(seconds: 30) { locked.load(ordering: .acquiring) == 2 })
        let after = try await shard.search(Self.request(k: 150)).keywordHits
        #expect(after.allSatisfy { Self.version($0) == 1 })
        #expect(try await Self.checkTexts(after, shard) == 0)
        // Texts asked for with the old version's hash are left out, not mixed in.
        #expect(try await shard.texts([ChunkKey(documentID: "d3", ordinal: 0): 0]).isEmpty)
        #expect(try await shard.texts([ChunkKey(documentID: "d3", ordinal: 0): 1]).values.first?.hasPrefix("version1 chunk0 of document3") == true)

        // Writers and readers together: every answer holds whole versions of each document.
        let writer = Task(executorPreference: executor) {
            for version in 2..<40 { _ = try await shard.write(upserts: (0..<50).map { Self.document($0, version: version) }, deletes: []) }
        }
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var mixed = 0
                    for _ in 0..<100 {
                        let r = try await shard.search(Self.request(k: 150))
                        let versions = Dictionary(grouping: r.keywordHits + r.vectorHits, by: \.key.documentID).mapValues { Set($0.map(Self.version)) }
                        mixed += versions.values.filter { $0.count > 1 }.count
                        _ = try await Self.checkTexts(r.keywordHits + r.vectorHits, shard)
                    }
                    return mixed
                }
            }
            for try await mixed in group { #expect(mixed == 0) }
        }
        try await writer.value
        await shard.close()
    }
}

/// Through a server: texts are read after the search, so a document replaced
/// in between must not lend its new text to a hit scored on the old version.
@Suite struct TextsAfterSearchTests {
    @Test func answersNeverMixVersionsWhileDocumentsAreReplaced() async throws {
        try await withRagServer { client, _ in
            func docs(_ version: Int) -> [RagDocument] {
                (0..<40).map { i in
                    RagDocument(id: "d\(i)", text: "marker\(version) common words about item\(i). " + String(repeating: "filler\(version) ", count: 30),
                                metadata: ["version": .number(Double(version))])
                }
            }
            _ = try await client.index(docs(0), collection: "kb")
            let done = Atomic<Bool>(false)
            let writer = Task {
                defer { done.store(true, ordering: .releasing) }
                for v in 1...30 { _ = try await client.index(docs(v), collection: "kb") }
            }
            var answers = 0
            while !done.load(ordering: .acquiring), answers < 5_000 {
                let r = try await client.query("common words item7", collection: "kb", topK: 10, noCache: true)
                #expect(!r.sources.isEmpty)
                for s in r.sources {
                    guard case .numberValue(let v)? = s.metadata["version"]?.kind else { Issue.record("no version"); continue }
                    #expect(s.content.hasPrefix("marker\(Int(v)) "), "\(s.content.prefix(20)) scored as version \(Int(v))")
                }
                answers += 1
            }
            try await writer.value
            #expect(answers > 0)
        }
    }
}

/// A one-shot gate for a thread that must wait (not a task: the blocker holds a SQLite connection).
final class ThreadGate: Sendable {
    private let condition = NSCondition()
    private let state = Mutex(false)

    func open() {
        condition.lock()
        state.withLock { $0 = true }
        condition.broadcast()
        condition.unlock()
    }

    func wait() {
        condition.lock()
        while !state.withLock({ $0 }) { condition.wait() }
        condition.unlock()
    }

    /// Waits at most `seconds`; false if the gate was still shut.
    /// (Not the primitive under `wait()`: corelibs Foundation traps on
    /// `NSCondition.wait(until: .distantFuture)`.)
    func wait(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while !state.withLock({ $0 }) {
            if !condition.wait(until: deadline) { return state.withLock { $0 } }
        }
        return true
    }
}
