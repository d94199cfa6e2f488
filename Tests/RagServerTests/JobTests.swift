import Foundation
import RagClient
import RagCore
import RagEngine
import RagServer
import RagTesting
import RagWire
import Synchronization
import Testing

/// Fails its first `failures` calls with UNAVAILABLE (as a provider's 503 would), then works.
final class FlakyEmbedder: Embedder {
    let inner = HashingEmbedder()
    let calls = Atomic<Int>(0)
    let failures: Int
    var id: String { inner.id }
    var dimension: Int { inner.dimension }
    init(failures: Int) { self.failures = failures }

    func embed(_ texts: [String]) async throws -> [[Float]] {
        if calls.wrappingAdd(1, ordering: .relaxed).oldValue < failures { throw RagError(.unavailable, "provider answered 503") }
        return try await inner.embed(texts)
    }
}

extension RagClient {
    func submit(_ spec: Ragd_V1_JobSpec) async throws(RagError) -> Ragd_V1_Job {
        try await call(.submitJob, Ragd_V1_SubmitJobRequest.with { $0.spec = spec }, as: Ragd_V1_SubmitJobResponse.self, timeout: .seconds(30)).job
    }

    func job(_ id: String) async throws(RagError) -> Ragd_V1_Job {
        try await call(.getJob, Ragd_V1_GetJobRequest.with { $0.id = id }, as: Ragd_V1_GetJobResponse.self, timeout: .seconds(10)).job
    }

    func waitForJob(_ id: String, seconds: Int = 60) async throws -> Ragd_V1_Job {
        for _ in 0..<(seconds * 20) {
            let j = try await job(id)
            if ["succeeded", "failed", "cancelled"].contains(j.state) { return j }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RagError(.deadlineExceeded, "job \(id) did not finish")
    }
}

func indexSpec(_ docs: [RagDocument], collection: String = "kb") -> Ragd_V1_JobSpec {
    Ragd_V1_JobSpec.with { s in
        s.index = Ragd_V1_IndexRequest.with { r in
            r.collection = collection
            r.documents = docs.map { d in Ragd_V1_Document.with { $0.id = d.id; $0.text = d.text } }
        }
    }
}

@Suite(.serialized) struct JobTests {
    @Test func retryableFailuresBackOffThenSucceed() async throws {
        // One partition: each attempt makes exactly one embedder call.
        try await withRagServer(configure: { $0.jobs.backoffBase = .milliseconds(100); $0.partitions = 1 }, embedder: FlakyEmbedder(failures: 2)) { client, _ in
            let submitted = try await client.submit(indexSpec(Fixtures.documents))
            #expect(submitted.state == "queued" && submitted.progressTotal == UInt64(Fixtures.documents.count))
            let j = try await client.waitForJob(submitted.id)
            #expect(j.state == "succeeded")
            #expect(j.attempts == 3)
            #expect(j.errors.count == 2 && j.errors.allSatisfy { $0.contains("UNAVAILABLE") })
            #expect(j.backoffSeconds.count == 2 && j.backoffSeconds[1] > j.backoffSeconds[0])
            let result = try Ragd_V1_IndexResponse(serializedBytes: j.result)
            #expect(result.documents == UInt32(Fixtures.documents.count))
            // A query job.
            let q = try await client.submit(Ragd_V1_JobSpec.with { $0.query = Ragd_V1_QueryRequest.with { $0.collection = "kb"; $0.query = "SQLITE_BUSY" } })
            let done = try await client.waitForJob(q.id)
            #expect(try Ragd_V1_QueryResponse(serializedBytes: done.result).sources.first?.documentID == "sqlite")
        }
    }

    @Test func nonRetryableFailsAtOnceAndCancelWorks() async throws {
        try await withRagServer(configure: { $0.jobs.backoffBase = .seconds(30) }, embedder: FlakyEmbedder(failures: 1)) { client, _ in
            let bad = try await client.submit(indexSpec([RagDocument(id: "empty", text: "   ")]))
            let j = try await client.waitForJob(bad.id)
            #expect(j.state == "failed" && j.attempts == 1 && j.errors.first?.contains("INVALID_ARGUMENT") == true)
            // This one fails once (retryable) and waits 30 s for its retry: cancel it meanwhile.
            let slow = try await client.submit(indexSpec(Fixtures.documents))
            for _ in 0..<100 where try await client.job(slow.id).attempts == 0 { try await Task.sleep(for: .milliseconds(20)) }
            let c = try await client.call(.cancelJob, Ragd_V1_CancelJobRequest.with { $0.id = slow.id }, as: Ragd_V1_CancelJobResponse.self, timeout: .seconds(5))
            #expect(c.job.state == "cancelled")
            do { _ = try await client.job("nope"); Issue.record("expected NOT_FOUND") } catch { #expect(RagError(from: error).code == .notFound) }
        }
    }

    @Test func anInterruptedJobResumesAfterARestartWithoutDuplicates() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let n = 4000
        let docs = (0..<n).map { RagDocument(id: "d\($0)", text: "Generated document \($0) about topic\($0 % 97) and item\($0).") }
        let first = try RagdProcess(dataDirectory: dir)
        let c1 = first.client()
        let job = try await c1.submit(indexSpec(docs, collection: "big"))
        // Stop the server in the middle of the job.
        for _ in 0..<400 {
            let p = try await c1.job(job.id).progressDone
            if p > 0 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let before = try await c1.job(job.id)
        first.kill9()
        await c1.close()
        #expect(before.progressDone < UInt64(n), "the job finished before the restart; make it bigger")
        let second = try RagdProcess(dataDirectory: dir)
        let c2 = second.client()
        let done = try await c2.waitForJob(job.id, seconds: 120)
        #expect(done.state == "succeeded")
        #expect(done.attempts >= 2)
        let stats = try await c2.stats(collection: "big")
        #expect(stats.collections.first?.documents == UInt64(n))
        #expect(stats.collections.first?.chunks == UInt64(n))  // one chunk each: nothing doubled
        let hit = try await c2.query("item3999", collection: "big", topK: 1, mode: .keyword)
        #expect(hit.sources.first?.documentID == "d3999")
        await c2.close()
    }
}

@Suite struct IndexStreamTests {
    @Test func progressEventsThenTotalsAndAFailureNamesItsDocuments() async throws {
        // One partition so the flaky embedder fails exactly the third batch's call.
        let flaky = FlakyEmbedder(failures: 0)
        try await withRagServer(configure: { $0.partitions = 1 }, embedder: flaky) { client, _ in
            let docs = (0..<200).map { RagDocument(id: "s\($0)", text: "Streamed document \($0) about subject\($0).") }
            var progress: [UInt64] = []
            var done: Ragd_V1_IndexResponse?
            for try await e in try await client.indexStream(docs, collection: "kb") {
                switch e.event {
                case .progress(let p):
                    progress.append(p.documentsDone)
                    #expect(p.documentsTotal == 200)
                case .done(let r): done = r
                case nil: break
                }
            }
            #expect(progress == [64, 128, 192, 200])
            #expect(done?.documents == 200)
        }
        let failing = BatchFailingEmbedder(failOnCall: 3)
        try await withRagServer(configure: { $0.partitions = 1 }, embedder: failing) { client, _ in
            let docs = (0..<200).map { RagDocument(id: "f\($0)", text: "Document \($0).") }
            var seen = 0
            do {
                for try await e in try await client.indexStream(docs, collection: "kb") { if case .progress = e.event { seen += 1 } }
                Issue.record("expected a failure")
            } catch {
                let e = RagError(from: error)
                #expect(e.code == .unavailable)
                #expect(e.message.contains("f128") && e.message.contains("128 documents before them are committed"))
            }
            #expect(seen == 2)
            let stats = try await client.stats(collection: "kb")
            #expect(stats.collections.first?.documents == 128)  // the committed batches stay
        }
    }
}

/// Fails exactly its `failOnCall`-th call (1-based).
final class BatchFailingEmbedder: Embedder {
    let inner = HashingEmbedder()
    let calls = Atomic<Int>(0)
    let failOnCall: Int
    var id: String { inner.id }
    var dimension: Int { inner.dimension }
    init(failOnCall: Int) { self.failOnCall = failOnCall }

    func embed(_ texts: [String]) async throws -> [[Float]] {
        if calls.wrappingAdd(1, ordering: .relaxed).oldValue + 1 == failOnCall { throw RagError(.unavailable, "provider answered 503") }
        return try await inner.embed(texts)
    }
}

@Suite struct CLIIndexTests {
    /// 20,000 generated documents through `ragctl index` (a child process) into a `ragd` child process.
    @Test func twentyThousandDocumentsThroughTheCLI() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/docs.jsonl"
        var lines = ""
        for i in 0..<20_000 { lines += "{\"id\": \"g\(i)\", \"text\": \"Generated page \(i) mentions token\(i) and group\(i % 50).\", \"metadata\": {\"group\": \(i % 50)}}\n" }
        try lines.write(toFile: file, atomically: true, encoding: .utf8)
        let server = try RagdProcess(dataDirectory: dir + "/data")
        let ragctl = URL(fileURLWithPath: RagdProcess.binary).deletingLastPathComponent().appendingPathComponent("ragctl").path
        let out = try run([ragctl, "index", file, "-c", "big", "--batch", "500", "--server", "127.0.0.1:\(server.port)", "--json"])
        #expect(out.status == 0, "\(out.errors)")
        #expect(out.output.contains("\"documents\": 20000"))
        let c = server.client()
        #expect(try await c.stats(collection: "big").collections.first?.documents == 20_000)
        for i in [0, 7_777, 19_999] {
            let r = try await c.query("token\(i)", collection: "big", topK: 1, mode: .keyword)
            #expect(r.sources.first?.documentID == "g\(i)")
        }
        let filtered = try await c.query("generated page", collection: "big", topK: 50, filter: try FilterExpression.parse("group = 7"), mode: .keyword)
        #expect(filtered.sources.count == 50 && filtered.sources.allSatisfy { $0.metadata["group"]?.numberValue == 7 })
        // Running the same command again changes nothing.
        let again = try run([ragctl, "index", file, "-c", "big", "--batch", "500", "--server", "127.0.0.1:\(server.port)", "--json"])
        #expect(again.output.contains("\"unchanged\": 20000"))
        await c.close()
    }
}
