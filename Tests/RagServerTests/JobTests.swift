import Foundation
import RagClient
import RagCore
import RagEngine
import RagServer
import RagTesting
import RagWire
import Synchronization
import Testing

/// Fails the calls numbered in `failingCalls` (1-based) with UNAVAILABLE, as a
/// provider's 503 would, and embeds the others.
final class FailingEmbedder: Embedder {
    let inner = HashingEmbedder()
    let calls = Atomic<Int>(0)
    let failingCalls: Set<Int>
    var id: String { inner.id }
    var dimension: Int { inner.dimension }
    init(failingCalls: Set<Int>) { self.failingCalls = failingCalls }
    /// Fails its first `failures` calls, then works.
    convenience init(failures: Int) { self.init(failingCalls: Set(1..<failures + 1)) }

    func embed(_ texts: [String]) async throws -> [[Float]] {
        // A text the "provider" refuses for good: not worth a retry.
        if texts.contains(where: { $0.hasPrefix("refused") }) { throw RagError(.invalidArgument, "provider refused the input") }
        if failingCalls.contains(calls.wrappingAdd(1, ordering: .relaxed).newValue) { throw RagError(.unavailable, "provider answered 503") }
        return try await inner.embed(texts)
    }
}

extension RagClient {
    func submit(_ spec: Ragd_V1_JobSpec) async throws(RagError) -> Ragd_V1_Job {
        try await call(.submitJob, Ragd_V1_SubmitJobRequest.with { $0.spec = spec }, as: Ragd_V1_SubmitJobResponse.self, timeout: hangGuard).job
    }

    /// The finished job, polling every 50 ms for at most `seconds`.
    func awaitJob(_ id: String, seconds: Int = 60) async throws(RagError) -> Ragd_V1_Job {
        try await waitForJob(id, every: .milliseconds(50), limit: .seconds(seconds))
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

/// A server whose job queue is `backend`: SQLite, or a throwaway redis-server.
func withJobServer(_ backend: String, configure: (inout RagServerConfiguration) -> Void = { _ in }, embedder: (any Embedder)? = nil,
                   _ body: (RagClient, RagServer) async throws -> Void) async throws {
    let redis = backend == "redis" ? try await RedisProcess.launch() : nil
    defer { redis?.stop() }
    try await withRagServer(configure: {
        if let redis { $0.jobBackend = .redis(host: "127.0.0.1", port: redis.port) }
        configure(&$0)
    }, embedder: embedder) { client, server in
        try await body(client, server)
    }
}

@Suite(.serialized) struct JobTests {
    @Test(arguments: ["sqlite", "redis"]) func retryableFailuresBackOffThenSucceed(backend: String) async throws {
        // One partition: each attempt makes exactly one embedder call.
        try await withJobServer(backend, configure: { $0.jobs.backoffBase = .milliseconds(100); $0.partitions = 1 }, embedder: FailingEmbedder(failures: 2)) { client, server in
            let submitted = try await client.submit(indexSpec(Fixtures.documents))
            #expect(["queued", "running"].contains(submitted.state) && submitted.progressTotal == UInt64(Fixtures.documents.count))
            #expect(submitted.backend == backend)
            let j = try await client.awaitJob(submitted.id)
            #expect(j.state == "succeeded")
            #expect(j.attempts == 3)
            #expect(j.errors.count == 2 && j.errors.allSatisfy { $0.contains("UNAVAILABLE") })
            #expect(j.backoffSeconds.count == 2 && j.backoffSeconds[1] > j.backoffSeconds[0])
            let result = try Ragd_V1_IndexResponse(serializedBytes: j.result)
            #expect(result.documents == UInt32(Fixtures.documents.count))
            // A query job.
            let q = try await client.submit(Ragd_V1_JobSpec.with { $0.query = Ragd_V1_QueryRequest.with { $0.collection = "kb"; $0.query = "SQLITE_BUSY" } })
            let done = try await client.awaitJob(q.id)
            #expect(try Ragd_V1_QueryResponse(serializedBytes: done.result).sources.first?.documentID == "sqlite")
            let listed = try await client.call(.listJobs, Ragd_V1_ListJobsRequest.with { $0.state = "succeeded" }, as: Ragd_V1_ListJobsResponse.self, timeout: hangGuard)
            #expect(listed.jobs.map(\.id) == [submitted.id, q.id])
            // Retention: nothing is old enough after an hour's age limit; with none, both finished jobs go.
            #expect(try await server.jobs.queue.purge(olderThan: 3600) == 0)
            #expect(try await server.jobs.queue.purge(olderThan: 0) == 2)
            await #expect(throws: RagError.self) { try await client.job(q.id) }
        }
    }

    @Test(arguments: ["sqlite", "redis"]) func nonRetryableFailsAtOnceAndCancelWorks(backend: String) async throws {
        // The retry waits an hour, so however loaded the machine, the cancel below lands before it.
        try await withJobServer(backend, configure: { $0.jobs.backoffBase = .seconds(3600) }, embedder: FailingEmbedder(failures: 1)) { client, _ in
            // What Index would refuse is refused at submission: nothing is queued.
            do {
                _ = try await client.submit(indexSpec([RagDocument(id: "empty", text: "   ")]))
                Issue.record("a job with a blank document was queued")
            } catch {
                #expect(RagError(from: error).code == .invalidArgument && RagError(from: error).message.contains("has no text"))
            }
            #expect(try await client.jobs().isEmpty)
            // A failure that no retry can fix ends the job at once.
            let bad = try await client.submit(indexSpec([RagDocument(id: "refusedDoc", text: "refused by the provider")]))
            let j = try await client.awaitJob(bad.id)
            #expect(j.state == "failed" && j.attempts == 1 && j.errors.first?.contains("INVALID_ARGUMENT") == true)
            #expect(j.errors.first?.contains("documents refusedDoc failed") == true, "\(j.errors)")
            // This one fails once (retryable) and waits for its retry: cancel it meanwhile.
            let slow = try await client.submit(indexSpec(Fixtures.documents))
            #expect(await eventually(seconds: 60) { (try? await client.job(slow.id).errors.count) == 1 }, "the first attempt never failed")
            let c = try await client.call(.cancelJob, Ragd_V1_CancelJobRequest.with { $0.id = slow.id }, as: Ragd_V1_CancelJobResponse.self, timeout: hangGuard)
            #expect(c.job.state == "cancelled")
            do { _ = try await client.job("nope"); Issue.record("expected NOT_FOUND") } catch { #expect(RagError(from: error).code == .notFound) }
        }
    }

    /// A job bigger than one frame arrives in parts; it does not run before the last one.
    @Test(arguments: ["sqlite", "redis"]) func aJobArrivesInPartsAndRunsAfterTheLast(backend: String) async throws {
        try await withJobServer(backend, configure: { $0.partitions = 2 }) { client, _ in
            let docs = (0..<300).map { RagDocument(id: "p\($0)", text: "Part document \($0) mentions word\($0).") }
            func part(_ range: Range<Int>) -> Ragd_V1_JobSpec { indexSpec(Array(docs[range]), collection: "parts") }
            func send(_ r: Ragd_V1_SubmitJobRequest) async throws(RagError) -> Ragd_V1_Job {
                try await client.call(.submitJob, r, as: Ragd_V1_SubmitJobResponse.self, timeout: hangGuard).job
            }
            let first = try await send(.with { $0.spec = part(0..<100); $0.more = true })
            #expect(first.state == "staging" && first.progressTotal == 100)
            try await Task.sleep(for: .milliseconds(300))
            let waiting = try await client.job(first.id)
            #expect(waiting.state == "staging" && waiting.attempts == 0)
            _ = try await send(.with { $0.appendTo = first.id; $0.spec = part(100..<200); $0.more = true })
            let sealed = try await send(.with { $0.appendTo = first.id; $0.spec = part(200..<300); $0.more = false })
            #expect(sealed.progressTotal == 300)
            let done = try await client.awaitJob(first.id)
            #expect(done.state == "succeeded" && done.progressDone == 300)
            #expect(try Ragd_V1_IndexResponse(serializedBytes: done.result).documents == 300)
            #expect(try await client.stats(collection: "parts").collections.first?.documents == 300)
            let hit = try await client.query("word250", collection: "parts", topK: 1, mode: .keyword)
            #expect(hit.sources.first?.documentID == "p250")
            // A staging job can be cancelled; it then takes no more parts.
            let abandoned = try await send(.with { $0.spec = part(0..<10); $0.more = true })
            #expect(try await client.cancelJob(abandoned.id).state == "cancelled")
            do {
                _ = try await send(.with { $0.appendTo = abandoned.id; $0.spec = part(10..<20) })
                Issue.record("expected FAILED_PRECONDITION")
            } catch { #expect(RagError(from: error).code == .failedPrecondition) }
            // Malformed submissions are refused with a reason; nothing is queued.
            let before = try await client.jobs().count
            let bad: [(Ragd_V1_SubmitJobRequest, String)] = [
                (.with { _ in }, "a job needs an index, a query or a reindex"),
                (.with { $0.spec.reindex = .with { $0.collection = "parts" }; $0.more = true }, "a reindex job has no parts"),
                (.with { $0.spec.query = .with { $0.collection = "parts"; $0.query = "q" }; $0.more = true }, "a query job has no parts"),
                (.with { $0.appendTo = first.id; $0.spec.query = .with { $0.collection = "parts"; $0.query = "q" } }, "append_to takes documents"),
                (.with { $0.spec = indexSpec([], collection: "parts") }, "index job has no documents"),
                (.with { $0.spec = indexSpec(Array(docs[0..<1]), collection: "bad name!") }, "collection"),
            ]
            for (request, reason) in bad {
                do {
                    _ = try await send(request)
                    Issue.record("expected INVALID_ARGUMENT for \(reason)")
                } catch {
                    let e = RagError(from: error)
                    #expect(e.code == .invalidArgument && e.message.contains(reason), "\(e)")
                }
            }
            do {
                _ = try await client.jobs(state: "exploded")
                Issue.record("expected INVALID_ARGUMENT")
            } catch { #expect(RagError(from: error).code == .invalidArgument) }
            #expect(try await client.jobs().count == before)
            // Parts go only to staging jobs that exist.
            for (target, code) in [(first.id, RagError.Code.failedPrecondition), ("no-such-job", .notFound)] {
                do {
                    _ = try await send(.with { $0.appendTo = target; $0.spec = part(0..<1) })
                    Issue.record("expected \(code)")
                } catch { #expect(RagError(from: error).code == code) }
            }
        }
    }
}

/// Embeds one text (a query) at once; a batch of several (indexing) takes `delay`.
final class SlowBatchEmbedder: Embedder {
    let inner = HashingEmbedder()
    let delay: Duration
    /// While closed, batches (more than one text) wait; single texts (queries) do not.
    let gateOpen = Atomic<Bool>(true)
    var id: String { inner.id }
    var dimension: Int { inner.dimension }
    init(delay: Duration, gated: Bool = false) {
        self.delay = delay
        gateOpen.store(!gated, ordering: .relaxed)
    }

    func embed(_ texts: [String]) async throws -> [[Float]] {
        if texts.count > 1 {
            while !gateOpen.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(5)) }
            try await Task.sleep(for: delay)
        }
        return try await inner.embed(texts)
    }
}

@Suite struct WorkLaneTests {
    @Test func aLaneRunsAtMostItsWorkersAndACancelledWaiterLeaves() async throws {
        let lane = WorkLane(name: "test", workers: 2)
        final class Gauge: Sendable { let current = Atomic<Int>(0), peak = Atomic<Int>(0) }
        let g = Gauge()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    try await lane.run {
                        let now = g.current.wrappingAdd(1, ordering: .relaxed).newValue
                        g.peak.max(now, ordering: .relaxed)
                        try await Task.sleep(for: .milliseconds(30))
                        g.current.wrappingSubtract(1, ordering: .relaxed)
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(g.peak.load(ordering: .relaxed) == 2)
        #expect(lane.stats.completed == 6 && lane.stats.busy == 0)

        let one = WorkLane(name: "one", workers: 1)
        let (gate, open) = AsyncStream<Void>.makeStream()
        let holder = Task { try await one.run { for await _ in gate { break } } }
        while one.stats.busy == 0 { await Task.yield() }
        let waiter = Task { try await one.run { 1 } }
        while one.stats.waiting == 0 { await Task.yield() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(one.stats.waiting == 0 && one.stats.busy == 1)
        open.yield()
        try await holder.value
        #expect(try await one.run { 2 } == 2)
    }

    /// A large indexing job fills the indexing lane; a query embeds in its own lane
    /// and does not wait for the indexing batches queued before it.
    @Test func queriesDoNotWaitBehindIndexingEmbeddings() async throws {
        // The index lane is held shut (its one batch waits on a gate): a query that
        // shared the lane could not finish at all; in its own lane it does at once.
        let embedder = SlowBatchEmbedder(delay: .milliseconds(50))
        try await withRagServer(configure: { $0.indexEmbedWorkers = 1; $0.partitions = 4; $0.jobs.batchSize = 400 },
                                embedder: embedder) { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            embedder.gateOpen.store(false, ordering: .relaxed)
            let docs = (0..<400).map { RagDocument(id: "q\($0)", text: "Queued document \($0) about lanes.") }
            let job = try await client.submit(indexSpec(docs, collection: "lanes"))
            func lane(_ name: String) async throws -> Ragd_V1_WorkQueueStats {
                try await client.stats().queues.first { $0.name == name } ?? Ragd_V1_WorkQueueStats()
            }
            var before = try await lane("embed-index")
            for _ in 0..<200 where before.waiting == 0 {
                try await Task.sleep(for: .milliseconds(10))
                before = try await lane("embed-index")
            }
            #expect(before.busy == 1 && before.waiting >= 1)
            let queryLane = try await lane("embed-query")
            let r = try await client.query("SQLITE_BUSY", collection: "kb", topK: 1, mode: .hybrid, timeout: .seconds(20))
            #expect(r.sources.first?.documentID == "sqlite")
            let after = try await lane("embed-index")
            #expect(after.completed == before.completed)  // no indexing batch finished meanwhile
            embedder.gateOpen.store(true, ordering: .relaxed)
            #expect(try await lane("embed-query").completed == queryLane.completed + 1)
            let jobs = try await lane("index-jobs")
            #expect(jobs.workers == 1 && jobs.busy == 1)
            let done = try await client.awaitJob(job.id)
            #expect(done.state == "succeeded")
        }
    }
}

@Suite struct IndexStreamTests {
    @Test func progressEventsThenTotalsAndAFailureNamesItsDocuments() async throws {
        // One partition so the flaky embedder fails exactly the third batch's call.
        let flaky = FailingEmbedder(failingCalls: [])
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
        let failing = FailingEmbedder(failingCalls: [3])
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

@Suite struct CLIIndexTests {
    static var ragctl: String { URL(fileURLWithPath: RagdProcess.binary).deletingLastPathComponent().appendingPathComponent("ragctl").path }

    /// `count` JSONL documents with a `group` number (0–49) in their metadata; returns the file's path.
    static func generatedCorpus(in dir: String, count: Int = 20_000) throws -> String {
        let file = dir + "/docs.jsonl"
        var lines = ""
        for i in 0..<count { lines += "{\"id\": \"g\(i)\", \"text\": \"Generated page \(i) mentions token\(i) and group\(i % 50).\", \"metadata\": {\"group\": \(i % 50)}}\n" }
        try lines.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    /// 20,000 generated documents through `ragctl index` (a child process) into a `ragd` child process.
    @Test func twentyThousandDocumentsThroughTheCLI() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = try Self.generatedCorpus(in: dir)
        let server = try await RagdProcess.launch(dataDirectory: dir + "/data")
        let ragctl = Self.ragctl
        let out = try await run([ragctl, "index", file, "-c", "big", "--batch", "500", "--server", "127.0.0.1:\(server.port)", "--json"])
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
        let again = try await run([ragctl, "index", file, "-c", "big", "--batch", "500", "--server", "127.0.0.1:\(server.port)", "--json"])
        #expect(again.output.contains("\"unchanged\": 20000"))
        // A bad document in the middle: the failing batch is named, the batch before it stays.
        var bad = ""
        for i in 0..<300 { bad += "{\"id\": \"b\(i)\", \"text\": \"\(i == 150 ? "   " : "Batch document \(i).")\"}\n" }
        try bad.write(toFile: dir + "/bad.jsonl", atomically: true, encoding: .utf8)
        let failed = try await run([ragctl, "index", dir + "/bad.jsonl", "-c", "bad", "--batch", "100", "--server", "127.0.0.1:\(server.port)"])
        #expect(failed.status == 1)
        #expect(failed.errors.contains("documents b100, b101") && failed.errors.contains("\"b150\" has no text")
                && failed.errors.contains("the 100 documents before them are committed"), "\(failed.errors)")
        #expect(try await c.stats(collection: "bad").collections.first?.documents == 100)
        await c.close()
    }

    /// `ragctl jobs submit` of 20,000 documents (uploaded in parts); the server
    /// dies (SIGKILL, from a failpoint) right after the job's 100th batch and is
    /// started again: the job resumes and ends with exactly 20,000 documents.
    @Test func anAsyncJobOfTwentyThousandSurvivesAKill() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = try Self.generatedCorpus(in: dir)
        let ragctl = Self.ragctl
        let first = try await RagdProcess.launch(dataDirectory: dir + "/data", environment: ["RAGD_FAILPOINT": "job-batch:100:kill"])
        let submitted = try await run([ragctl, "jobs", "submit", file, "-c", "big", "--part-bytes", "262144", "--server", "127.0.0.1:\(first.port)"])
        #expect(submitted.status == 0, "\(submitted.errors)")
        let id = submitted.output.trimmingCharacters(in: .whitespacesAndNewlines)
        for _ in 0..<1200 where first.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!first.isRunning)
        let second = try await RagdProcess.launch(dataDirectory: dir + "/data")
        let waited = try await run([ragctl, "jobs", "wait", id, "--server", "127.0.0.1:\(second.port)"])
        #expect(waited.status == 0, "\(waited.output) \(waited.errors)")
        let c2 = second.client()
        let done = try await c2.job(id)
        #expect(done.state == "succeeded" && done.progressDone == 20_000 && done.attempts == 2)
        #expect(done.errors == ["attempt 1: interrupted by a server stop"])
        let result = try Ragd_V1_IndexResponse(serializedBytes: done.result)
        #expect(result.unchanged == 6_400 && result.documents == 13_600)  // 100 batches of 64 were in before the kill
        let stats = try await c2.stats(collection: "big").collections.first
        #expect(stats?.documents == 20_000)
        #expect(stats?.chunks == 20_000)  // one chunk each: nothing doubled
        for i in [0, 19_999] {
            #expect(try await c2.query("token\(i)", collection: "big", topK: 1, mode: .keyword).sources.first?.documentID == "g\(i)")
        }
        await c2.close()
    }
}
