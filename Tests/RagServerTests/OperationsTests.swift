import Foundation
import RagClient
import RagCore
import RagEngine
import RagServer
import RagTesting
import RagWire
import Synchronization
import Testing

@Suite(.serialized) struct OperationsTests {
    /// #19.7: an upload in parts whose client went away expires: the job fails
    /// with a reason, its parts are dropped, and it takes no more parts.
    @Test(arguments: ["sqlite", "redis"]) func abandonedUploadsExpire(backend: String) async throws {
        // 5 s: the first part's answer must arrive before the upload expires, on a loaded machine too.
        try await withJobServer(backend, configure: { $0.jobs.stagingTimeout = .seconds(5) }) { client, _ in
            let docs = (0..<10).map { RagDocument(id: "part-\($0)", text: "uploaded in parts \($0)") }
            var first = Ragd_V1_SubmitJobRequest()
            first.spec = indexSpec(docs)
            first.more = true
            let staged = try await client.call(.submitJob, first, as: Ragd_V1_SubmitJobResponse.self, timeout: hangGuard).job
            #expect(staged.state == "staging")
            var job = try await client.job(staged.id)
            for _ in 0..<1200 where job.state == "staging" {
                try await Task.sleep(for: .milliseconds(50))
                job = try await client.job(staged.id)
            }
            #expect(job.state == "failed")
            #expect(job.errors.last?.contains("upload abandoned") == true)
            var more = Ragd_V1_SubmitJobRequest()
            more.appendTo = staged.id
            more.spec = indexSpec(docs)
            do {
                _ = try await client.call(.submitJob, more, as: Ragd_V1_SubmitJobResponse.self, timeout: hangGuard)
                Issue.record("an expired upload took another part")
            } catch {
                #expect(RagError(from: error).code == .failedPrecondition)
            }
            #expect(try await client.listCollections().isEmpty)  // nothing of it was indexed
        }
    }

    /// #19.14: blocking embedding work runs on the lanes' own threads: while an
    /// index keeps every lane busy, /metrics and Stats still answer at once.
    @Test func monitoringAnswersWhileEmbeddingBlocks() async throws {
        let embedder = BlockingEmbedder(block: .milliseconds(250))
        try await withRagServer(configure: { $0.partitions = 4; $0.embedBatchSize = 2 }, embedder: embedder) { client, server in
            // The metrics listener binds beside the RPC one: wait until it has.
            for _ in 0..<500 where server.metricsLocalAddress == nil { try await Task.sleep(for: .milliseconds(10)) }
            let metricsPort = try #require(server.metricsLocalAddress?.port)
            let docs = (0..<128).map { RagDocument(id: "busy-\($0)", text: "a document for a slow model, number \($0)") }
            let indexing = Task { try await client.index(docs, collection: "kb", timeout: .seconds(300)) }
            let stats = RagClient(host: "127.0.0.1", port: server.localAddress!.port!)
            var scrapes = 0
            var sawBusy = false
            while scrapes < 12 {
                // What proves they were not queued behind the lanes is `sawBusy`
                // (an answer while embedding ran), not a time: the limits here
                // only stop a hang, and are wide because other tests' clusters
                // (the chaos test) share the cores.
                let r = try await run(["curl", "-sf", "--max-time", "5", "http://127.0.0.1:\(metricsPort)/metrics"])
                #expect(r.status == 0 && r.output.contains("# TYPE rag_"), "scrape \(scrapes) failed: status \(r.status), \(r.output.prefix(200))")
                let s = try await stats.stats(timeout: .seconds(5))
                sawBusy = sawBusy || (s.queues.first { $0.name == "embed-index" }?.busy ?? 0) > 0
                scrapes += 1
            }
            #expect(sawBusy, "the index was not embedding while we scraped")
            await stats.close()
            _ = try await indexing.value
        }
    }

    /// #19.12: a bad experiment file is one line and exit 1; `"mode": "keyword"` is accepted.
    @Test func experimentFilesAreCheckedLikeOtherInput() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await withRagServer { client, server in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            let ragctl = CLIIndexTests.ragctl
            let address = ["--server", "127.0.0.1:\(server.localAddress!.port!)"]
            try "{\"name\": \"x\", \"variants\": [".write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
            let bad = try await run([ragctl, "experiments", "create", dir + "/bad.json"] + address)
            #expect(bad.status == 1)
            #expect(bad.errors.split(whereSeparator: \.isNewline).count == 1 && bad.errors.hasPrefix("ragctl: "), "\(bad.errors)")
            let good = """
                {"name": "modes", "collection": "kb", "variants": [{"name": "control", "ratio": 0.5},
                 {"name": "kw", "ratio": 0.5, "config": {"mode": "keyword"}}]}
                """
            try good.write(toFile: dir + "/good.json", atomically: true, encoding: .utf8)
            let created = try await run([ragctl, "experiments", "create", dir + "/good.json"] + address)
            #expect(created.status == 0, "\(created.errors)")
            let list = try await client.call(.listExperiments, Ragd_V1_ListExperimentsRequest(), as: Ragd_V1_ListExperimentsResponse.self, timeout: hangGuard)
            #expect(list.experiments.first?.variants.last?.config.mode == .keyword)
            for u in 0..<40 { _ = try await client.query("raft leader", collection: "kb", userID: "user\(u)") }
            let report = try await run([ragctl, "experiments", "report", "modes"] + address)
            #expect(report.status == 0)
            // Every metric row puts its count in the same column.
            let rows = report.output.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("  ") && !$0.contains("metric") && !$0.contains("vs control") }
            #expect(!rows.isEmpty)
            #expect(Set(rows.map { $0.dropFirst(2).prefix(25).last }).count == 1, "\(rows)")
        }
    }

    /// #19.12: a missing model directory says which file is missing and how to get it.
    @Test func missingMiniLMWeightsAreExplained() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try await run([RagdProcess.binary, "serve", "--port", "0", "--data-dir", dir + "/data", "--embedder", "minilm", "--minilm-dir", dir + "/nothing-here",
                               "--metrics-port", "off"])
        #expect(r.status != 0)
        #expect(r.errors.contains("vocab.txt") && r.errors.contains("fetch-minilm.sh"), "\(r.errors)")
        #expect(!r.errors.contains("NSCocoaErrorDomain"))
        // Without --minilm-dir, the weights are found from any working directory.
        let candidates = MiniLMLocation.candidates(environment: [:], executable: RagdProcess.binary)
        #expect(candidates.contains(Repo.path("models/all-minilm-l6-v2")))
    }

    /// #19.13: the local cluster script starts S x R nodes outside the checkout, reports and stops them.
    @Test func clusterScriptStartsReportsAndStops() async throws {
        let dir = makeTemporaryDirectory("ragd-cluster-script")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = Repo.path("Scripts/cluster-local.sh")
        let env = ["env", "RAGD_BIN=\(RagdProcess.binary)"]
        // Ports the kernel picks: fixed ones collide with other tests' sockets now and then.
        let start = try await run(env + [script, "start", "--shards", "2", "--replicas", "1", "--port", "0", "--shard-port", "0", "--dir", dir])
        #expect(start.status == 0, "\(start.output) \(start.errors)")
        let port = try #require(start.output.split(separator: " ").first { $0.hasPrefix("127.0.0.1:") }.flatMap { Int($0.dropFirst(10)) })
        let layout = try String(contentsOfFile: dir + "/cluster.json", encoding: .utf8)
        #expect(layout.components(separatedBy: "127.0.0.1:").count == 3, "\(layout)")  // the shards' internal listeners
        let status = try await run(env + [script, "status", "--dir", dir])
        #expect(status.status == 0 && status.output.split(whereSeparator: \.isNewline).filter { $0.hasSuffix(")") && $0.contains("running") }.count == 3)
        let client = RagClient(host: "127.0.0.1", port: port, defaultTimeout: .seconds(30))
        _ = try await client.index(Fixtures.documents, collection: "kb")
        let r = try await client.query("how is a leader elected in Raft consensus", collection: "kb", topK: 1)
        #expect(r.sources.first?.documentID == "raft")
        await client.close()
        let stop = try await run(env + [script, "stop", "--dir", dir])
        #expect(stop.status == 0)
        let after = try await run(env + [script, "status", "--dir", dir])
        #expect(after.status != 0)
        #expect(FileManager.default.fileExists(atPath: dir + "/cluster.json"))
    }
}

/// `--log-format json --access-log`: every line on standard error is one JSON
/// object, and every finished call has a line with its request id, method,
/// status and duration.
@Suite struct StructuredLogTests {
    @Test func jsonLinesWithOneLinePerCall() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--log-format", "json", "--access-log", "--log-level", "info"])
        defer { server.kill9() }
        let c = server.client()
        _ = try await c.index(Fixtures.documents, collection: "kb")
        _ = try await c.query("raft leader", collection: "kb", topK: 3)
        _ = try? await c.query("anything", collection: "missing", topK: 3)
        await c.close()
        var calls: [[String: Any]] = []
        #expect(await eventually {
            let lines = server.log.split(separator: "\n").filter { !$0.isEmpty }
            let objects = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
            guard objects.count == lines.count else { return false }
            calls = objects.filter { $0["message"] as? String == "call" }
            return calls.count >= 3
        }, "\(server.log.suffix(2000))")
        #expect(calls.allSatisfy { ($0["request.id"] as? String)?.isEmpty == false && Double($0["duration_ms"] as? String ?? "") != nil && $0["time"] != nil })
        #expect(calls.contains { $0["method"] as? String == "Index" && $0["status"] as? String == "OK" })
        #expect(calls.contains { $0["method"] as? String == "Query" && $0["status"] as? String == "OK" })
        #expect(calls.contains { $0["method"] as? String == "Query" && $0["status"] as? String == "NOT_FOUND" })
        let bad = try await run([RagdProcess.binary, "serve", "--log-format", "xml", "--port", "0", "--data-dir", dir])
        #expect(bad.status != 0 && bad.errors.contains("--log-format must be text or json"))
    }
}
