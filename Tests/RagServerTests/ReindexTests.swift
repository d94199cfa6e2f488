import Foundation
import RagClient
import RagCore
import RagTesting
import RagWire
import Testing

/// `ragctl reindex`: a collection rebuilt from its kept source texts beside the
/// old index, queried and written while it builds, switched at once, and
/// resumed after a kill. "Nothing drifted" is checked by comparing the rebuilt
/// collection with a fresh one indexed from the final documents with the same
/// chunking: same documents, same chunks, the same hits with the same scores.
@Suite struct ReindexTests {
    /// The 288 man pages of the quality fixture, with their titles as metadata.
    static let documents: [RagDocument] = {
        struct Line: Decodable { var id: String; var title: String; var text: String }
        let data = FileManager.default.contents(atPath: Repo.path("Tests/Fixtures/quality-docs.jsonl")) ?? Data()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            (try? JSONDecoder().decode(Line.self, from: Data(line.utf8))).map { RagDocument(id: $0.id, text: $0.text, metadata: ["title": .string($0.title)]) }
        }
    }()

    static let questions = ["double buffering in the X window system", "how to list open files", "change the owner of a file",
                            "compress a file with gzip", "print the last lines of a file"]

    static func index(_ docs: [RagDocument], into collection: String, _ c: RagClient, chunkSize: Int = 0, chunkOverlap: Int = 0) async throws {
        for start in stride(from: 0, to: docs.count, by: 64) {
            _ = try await c.index(Array(docs[start..<min(start + 64, docs.count)]), collection: collection, chunkSize: chunkSize,
                                  chunkOverlap: chunkOverlap, timeout: hangGuard)
        }
    }

    /// What a collection answers, partition aside: the same documents chunked and
    /// embedded alike answer the same wherever their partitions are.
    static func answers(_ collection: String, _ c: RagClient) async throws -> [[String]] {
        var out: [[String]] = []
        for q in questions {
            for mode in [SearchMode.hybrid, .keyword, .vector] {
                let r = try await c.query(q, collection: collection, topK: 5, mode: mode, noCache: true, timeout: hangGuard)
                out.append(r.sources.map { "\($0.documentID) \($0.content.prefix(40)) \(String(format: "%.6f", $0.score))" })
            }
        }
        return out
    }

    static func counts(_ collection: String, _ c: RagClient) async throws -> (documents: UInt64, chunks: UInt64, embedder: String) {
        let s = try #require(try await c.stats(collection: collection, timeout: hangGuard).collections.first)
        return (s.documents, s.chunks, s.embedder)
    }

    static func job(_ id: String, _ c: RagClient) async throws -> Ragd_V1_Job {
        try await c.waitForJob(id, every: .milliseconds(100), limit: .seconds(300))
    }

    /// Queries and writes run the whole time a reindex builds (a failpoint slows
    /// each page by 200 ms): no query fails, every write lands in the new index,
    /// and the result equals a fresh index of the final documents.
    @Test func queriesAndWritesRunWhileTheIndexIsRebuilt() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--log-level", "info"],
                                                  environment: ["RAGD_FAILPOINT": "reindex-page:1:slow"])
        let c = server.client()
        var docs = Self.documents
        try #require(docs.count == 288)
        try await Self.index(docs, into: "kb", c)
        let before = try await Self.counts("kb", c)

        let job = try await c.submitReindexJob(collection: "kb", chunkSize: 300, chunkOverlap: 30, timeout: hangGuard)
        #expect(job.kind == "reindex" && job.progressTotal == 288)
        // While it builds: a second reindex is refused, queries answer, writes go on.
        #expect(await code { _ = try await c.submitReindexJob(collection: "kb", timeout: hangGuard) } == .failedPrecondition)
        let queries = Task { () -> (ok: Int, failed: [String]) in
            var ok = 0, failed: [String] = []
            while !Task.isCancelled {
                do {
                    let r = try await c.query(Self.questions[ok % Self.questions.count], collection: "kb", topK: 5, noCache: true, timeout: hangGuard)
                    if r.sources.isEmpty { failed.append("no sources") } else { ok += 1 }
                } catch where !Task.isCancelled { failed.append("\(error)") } catch {}
            }
            return (ok, failed)
        }
        var writes = 0
        var running = true
        while running {
            let i = writes
            if i % 3 == 0 {
                // A new document.
                let d = RagDocument(id: "new-\(i)", text: "Reindex mirror document \(i). " + String(repeating: "spool quota ledger \(i) ", count: 20),
                                    metadata: ["title": .string("new \(i)")])
                _ = try await c.index([d], collection: "kb", timeout: hangGuard)
                docs.append(d)
            } else if i % 3 == 1 {
                // A changed document.
                let j = (i * 37) % docs.count
                docs[j].text += "\nAmended while the index was rebuilt (\(i))."
                _ = try await c.index([docs[j]], collection: "kb", timeout: hangGuard)
            } else {
                // A deleted one.
                let j = (i * 53) % docs.count
                _ = try await c.delete([docs[j].id], collection: "kb", timeout: hangGuard)
                docs.remove(at: j)
            }
            writes += 1
            let state = try await c.job(job.id, timeout: hangGuard).state
            running = state == "queued" || state == "running"
        }
        let done = try await Self.job(job.id, c)
        queries.cancel()
        let (ok, failed) = await queries.value
        #expect(done.state == "succeeded", "\(done.errors)")
        #expect(failed.isEmpty, "\(failed.prefix(3))")
        #expect(ok > 0 && writes > 3, "queries \(ok), writes \(writes) during the build")
        let result = try Ragd_V1_ReindexResponse(serializedBytes: done.result)
        #expect(result.chunkSize == 300 && result.chunkOverlap == 30 && result.withoutSource == 0)

        // The same as a fresh index of the final documents with that chunking.
        try await Self.index(docs, into: "fresh", c, chunkSize: 300, chunkOverlap: 30)
        let rebuilt = try await Self.counts("kb", c), fresh = try await Self.counts("fresh", c)
        #expect(rebuilt.documents == fresh.documents && rebuilt.chunks == fresh.chunks)
        #expect(rebuilt.chunks > before.chunks, "smaller chunks: more of them (\(before.chunks) → \(rebuilt.chunks))")
        let kbAnswers = try await Self.answers("kb", c), freshAnswers = try await Self.answers("fresh", c)
        #expect(kbAnswers == freshAnswers)
        // A later write that names no chunking gets the collection's new one.
        let late = RagDocument(id: "late", text: String(repeating: "A late paragraph about spool quotas and ledgers. ", count: 30))
        _ = try await c.index([late], collection: "kb", timeout: hangGuard)
        _ = try await c.index([late], collection: "fresh", chunkSize: 300, chunkOverlap: 30, timeout: hangGuard)
        let kbLate = try await Self.counts("kb", c), freshLate = try await Self.counts("fresh", c)
        #expect(kbLate.chunks == freshLate.chunks)
        // The old storage is deleted once queries are done with it.
        #expect(await eventually(seconds: 60) { !FileManager.default.fileExists(atPath: dir + "/collections/kb") })
        #expect(FileManager.default.fileExists(atPath: dir + "/collections/kb~r1"))
        await c.close()
        _ = await server.stop()
    }

    /// The server is SIGKILLed after the build's third page and started again:
    /// queries answer from the old index meanwhile, the job resumes without
    /// embedding again what the build already holds, and then switches.
    @Test func aReindexSurvivesAKill() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try await RagdProcess.launch(dataDirectory: dir, environment: ["RAGD_FAILPOINT": "reindex-page:3:kill"])
        let c1 = first.client()
        try await Self.index(Self.documents, into: "kb", c1)
        let old = try await Self.answers("kb", c1)
        let job = try await c1.submitReindexJob(collection: "kb", chunkSize: 500, chunkOverlap: 50, timeout: hangGuard)
        for _ in 0..<1200 where first.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!first.isRunning)
        await c1.close()

        let second = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--log-level", "info"])
        let c = second.client()
        let done = try await Self.job(job.id, c)
        #expect(done.state == "succeeded" && done.attempts == 2, "\(done.state) \(done.errors)")
        let result = try Ragd_V1_ReindexResponse(serializedBytes: done.result)
        #expect(result.documents == 288)
        // Three pages were built before the kill (the first one full: every
        // partition holds more than 32 of the 288): not embedded again.
        #expect(result.reembedded <= 288 - 32, "embedded \(result.reembedded) after the restart")
        try await Self.index(Self.documents, into: "fresh", c, chunkSize: 500, chunkOverlap: 50)
        let rebuilt = try await Self.counts("kb", c), fresh = try await Self.counts("fresh", c)
        #expect(rebuilt.documents == 288 && rebuilt.chunks == fresh.chunks)
        let answers = try await Self.answers("kb", c)
        let freshAnswers = try await Self.answers("fresh", c)
        #expect(answers == freshAnswers)
        #expect(answers != old, "the rebuilt chunks answer differently from the old ones")
        await c.close()
        // The switch is durable.
        _ = await second.stop()
        let third = try await RagdProcess.launch(dataDirectory: dir)
        let c3 = third.client()
        let after = try await Self.answers("kb", c3)
        #expect(after == answers)
        #expect(!FileManager.default.fileExists(atPath: dir + "/collections/kb"))
        await c3.close()
        _ = await third.stop()
    }

    /// Bad requests are refused before a job exists; a cancelled reindex leaves
    /// the collection as it was and deletes its unfinished build.
    @Test func refusalsAndCancellation() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--log-level", "info"],
                                                  environment: ["RAGD_FAILPOINT": "reindex-page:2:pause"])
        let c = server.client()
        try await Self.index(Array(Self.documents.prefix(100)), into: "kb", c)
        let old = try await Self.answers("kb", c)
        #expect(await code { _ = try await c.submitReindexJob(collection: "nope", timeout: hangGuard) } == .notFound)
        #expect(await code { _ = try await c.submitReindexJob(collection: "bad/name", timeout: hangGuard) } == .invalidArgument)
        #expect(await code { _ = try await c.submitReindexJob(collection: "kb", chunkSize: 100, chunkOverlap: 100, timeout: hangGuard) } == .invalidArgument)
        do {
            _ = try await c.submitReindexJob(collection: "kb", embedder: "minilm", timeout: hangGuard)
            Issue.record("another embedder than the server's must be refused")
        } catch {
            let e = RagError(from: error)
            #expect(e.code == .failedPrecondition && e.message.contains("--embedder minilm"), "\(e)")
        }
        let job = try await c.submitReindexJob(collection: "kb", embedder: "hashing", chunkSize: 200, timeout: hangGuard)
        #expect(await eventually(seconds: 60) { (try? await c.job(job.id).progressDone) ?? 0 > 0 })
        #expect(FileManager.default.fileExists(atPath: dir + "/collections/kb~r1"))
        #expect(await code { _ = try await c.submitReindexJob(collection: "kb", timeout: hangGuard) } == .failedPrecondition)
        _ = try await c.cancelJob(job.id, timeout: hangGuard)
        #expect(await eventually(seconds: 60) { !FileManager.default.fileExists(atPath: dir + "/collections/kb~r1") })
        let now = try await Self.answers("kb", c)
        #expect(now == old)
        #expect(server.log.contains("its unfinished build kb~r1 is deleted"))
        // Writes after the cancel reach one index, and a new reindex may start.
        _ = try await c.index([RagDocument(id: "after", text: "written after the cancelled reindex")], collection: "kb", timeout: hangGuard)
        #expect(try await Self.counts("kb", c).documents == 101)
        await c.close()
        _ = await server.stop()
    }

    /// The upgrade a new default brings: a collection the hashing embedder built,
    /// opened by a MiniLM server, is refused until `ragctl reindex` rebuilds it.
    @Test func anUpgradedServerReindexesAnOldCollection() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let old = try await RagdProcess.launch(dataDirectory: dir)  // the harness's --embedder hashing
        _ = try await old.client().index(Fixtures.documents, collection: "kb", timeout: hangGuard)
        _ = await old.stop()
        let server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--embedder", "auto"])
        let c = server.client()
        #expect(await code { _ = try await c.query("sqlite busy", collection: "kb", timeout: hangGuard) } == .failedPrecondition)
        let reindexed = try await run([CLIIndexTests.ragctl, "reindex", "-c", "kb", "--server", "127.0.0.1:\(server.port)"])
        #expect(reindexed.status == 0, "\(reindexed.output) \(reindexed.errors)")
        #expect(reindexed.output.contains("reindexed kb: \(Fixtures.documents.count) documents with minilm"), "\(reindexed.output)")
        #expect(try await Self.counts("kb", c).embedder.hasPrefix("minilm"))
        for (question, answer) in Fixtures.questions.prefix(4) {
            #expect(try await c.query(question, collection: "kb", topK: 1, mode: .vector, timeout: hangGuard).sources.first?.documentID == answer)
        }
        await c.close()
    }

    /// An experiment that defines a chunking profile on a collection that holds
    /// documents gets that profile's index filled from the kept sources by a job
    /// (before, its variant searched only what was written after it began).
    @Test func anExperimentsChunkingProfileIsFilledWithEarlierDocuments() async throws {
        try await withRagServer { c, _ in
            let docs = Array(Self.documents.prefix(100))
            try await Self.index(docs, into: "kb", c)
            var small = Ragd_V1_VariantConfig()
            small.chunking = Ragd_V1_ChunkingProfile.with { $0.name = "small"; $0.chunkSize = 200; $0.chunkOverlap = 20 }
            let created = try await c.call(.createExperiment, Ragd_V1_CreateExperimentRequest.with {
                $0.experiment = experiment("chunks", [("control", 0.5, nil), ("small", 0.5, small)])
            }, as: Ragd_V1_CreateExperimentResponse.self, timeout: hangGuard)
            try #require(created.backfillJobs.count == 1)
            let done = try await Self.job(created.backfillJobs[0], c)
            #expect(done.state == "succeeded" && done.kind == "reindex" && done.progressDone == 100, "\(done.errors)")
            try await Self.index(docs, into: "fresh", c, chunkSize: 200, chunkOverlap: 20)
            let filled = try await Self.counts("kb.chunk-small", c), fresh = try await Self.counts("fresh", c)
            #expect(filled.documents == 100 && filled.chunks == fresh.chunks)
            // The small variant now finds a document indexed before the experiment.
            var sawSmall = false
            for i in 0..<40 {
                guard case .string(let title)? = docs[7].metadata["title"] else { Issue.record("no title"); return }
                let r = try await c.query(title, collection: "kb", topK: 10, mode: .keyword,
                                          userID: "user\(i)", noCache: true, timeout: hangGuard)
                guard r.variant == "small" else { continue }
                sawSmall = true
                #expect(r.sources.contains { $0.documentID == docs[7].id } && r.sources.allSatisfy { $0.content.count <= 200 }, "\(r.sources.map(\.documentID))")
            }
            #expect(sawSmall)
            // A second experiment with the same profile adds no job: its index is there.
            _ = try await c.call(.stopExperiment, Ragd_V1_StopExperimentRequest.with { $0.name = "chunks" }, as: Ragd_V1_StopExperimentResponse.self,
                                 timeout: hangGuard)
            let again = try await c.call(.createExperiment, Ragd_V1_CreateExperimentRequest.with {
                $0.experiment = experiment("chunks2", [("control", 0.5, nil), ("small", 0.5, small)])
            }, as: Ragd_V1_CreateExperimentResponse.self, timeout: hangGuard)
            #expect(again.backfillJobs.isEmpty)
        }
    }
}
