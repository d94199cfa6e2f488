import Foundation
import RagClient
import RagCore
import RagEngine
import RagServer
import RagTesting
import RagWire
import Testing

/// The fake provider process (Tests/Fixtures/fake_provider.py) on a free port.
final class FakeProvider: @unchecked Sendable {
    let process: ChildProcess
    let port: Int

    init() throws {
        process = try ChildProcess("/usr/bin/env", ["python3", Repo.path("Tests/Fixtures/fake_provider.py")], stdout: .pipe)
        let line = String(decoding: process.output!.availableData, as: UTF8.self)
        guard let p = Int(line.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") else {
            throw RagError(.internal, "fake provider did not start: \(line)")
        }
        port = p
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func counts() throws -> [String: Int] {
        return try JSONDecoder().decode([String: Int].self, from: try httpGet(port: port, path: "/_stats").body)
    }

    deinit { process.signal(SIGKILL); process.waitUntilExit() }
}

@Suite(.serialized) struct ProviderTests {
    func provider(_ flavor: RagServerConfiguration.Provider.Flavor, _ fake: FakeProvider, _ model: String) -> RagServerConfiguration.Provider {
        var p = RagServerConfiguration.Provider(flavor: flavor, url: fake.url, model: model, apiKeyEnvironment: "PATH")
        p.timeout = .seconds(1)
        p.retries = 3
        return p
    }

    @Test(arguments: [RagServerConfiguration.Provider.Flavor.openai, .ollama])
    func embeddingsAndStreamingChat(_ flavor: RagServerConfiguration.Provider.Flavor) async throws {
        let fake = try await onThread { try FakeProvider() }
        try await withRagServer(configure: {
            $0.embeddingProvider = provider(flavor, fake, "ok")
            $0.generationProvider = provider(flavor, fake, "ok")
        }) { client, server in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            let list = try await client.listCollections()
            #expect(list.first?.embedder == "\(flavor.rawValue):ok:16" && list.first?.dimension == 16)
            let r = try await client.query("what does SQLITE_BUSY mean", collection: "kb", mode: .vector)
            #expect(r.answer == "The answer is in the sources [1].")
            #expect(!r.degraded)
            var tokens: [String] = []
            for try await e in try await client.stream("what does SQLITE_BUSY mean", collection: "kb") {
                if case .token(let t) = e.event { tokens.append(t) }
            }
            #expect(tokens == ["The ", "answer ", "is ", "in ", "the ", "sources ", "[1]."])
            // Token usage reached the metrics.
            let text = server.metrics.exposition()
            #expect(text.contains("rag_llm_tokens_total{type=\"completion\"} 14"))
            #expect(!text.contains("rag_llm_tokens_total{type=\"prompt\"} 0"))
        }
        // The API key came from the named environment variable.
        #expect(try await onThread { try fake.counts() }.keys.contains { $0.hasPrefix("auth Bearer ") })
    }

    @Test func retriesOn429ThenSucceeds() async throws {
        let fake = try await onThread { try FakeProvider() }
        try await withRagServer(configure: { $0.embeddingProvider = provider(.openai, fake, "flaky") }) { client, _ in
            let r = try await client.index(Fixtures.documents, collection: "kb")
            #expect(r.documents == UInt32(Fixtures.documents.count))
        }
        #expect(try await onThread { try fake.counts() }["/v1/embeddings flaky"]! >= 4)  // 2 x 429, then the probe and the batch
    }

    @Test func failingChatDegradesOrFailsWhenStrict() async throws {
        let fake = try await onThread { try FakeProvider() }
        for model in ["fail", "broken", "slow"] {
            var p = provider(.openai, fake, model)
            p.retries = 1
            p.timeout = .milliseconds(500)
            try await withRagServer(configure: { $0.generationProvider = p }) { client, _ in
                _ = try await client.index(Fixtures.documents, collection: "kb")
                let r = try await client.query("what does SQLITE_BUSY mean", collection: "kb", noCache: true)
                #expect(r.degraded, "\(model)")
                #expect(r.degradedReason.contains("openai-chat:\(model)"))
                #expect(r.answer.contains("[1]"))  // the extractive answer
                var strict = Ragd_V1_QueryRequest()
                strict.collection = "kb"
                strict.query = "what does SQLITE_BUSY mean"
                strict.strict = true
                strict.noCache = true
                do {
                    _ = try await client.call(.query, strict, as: Ragd_V1_QueryResponse.self, timeout: .seconds(20))
                    Issue.record("expected UNAVAILABLE for \(model)")
                } catch {
                    #expect(RagError(from: error).code == .unavailable, "\(model): \(error)")
                }
            }
        }
    }

    @Test func llmJudgeGradesThroughAChatProvider() async throws {
        let fake = try await onThread { try FakeProvider() }
        for flavor in [HTTPChatGenerator.Flavor.openai, .ollama] {
            let judge = LLMJudge(model: HTTPChatGenerator(flavor: flavor, model: "judge", http: ProviderHTTP(baseURL: fake.url)))
            let g = try await judge.judge(question: "q", answer: "a", reference: "r")
            #expect(g == JudgeScore(accuracy: 4, relevance: 5, completeness: 3, reason: "close {enough}"))
        }
    }

    @Test func brokenEmbeddingProviderIsAClearError() async throws {
        let fake = try await onThread { try FakeProvider() }
        do {
            try await withRagServer(configure: { $0.embeddingProvider = provider(.ollama, fake, "broken") }) { _, _ in }
            Issue.record("expected the server to refuse to start")
        } catch {
            #expect(RagError(from: error).code == .internal)
            #expect(RagError(from: error).message.contains("not the expected JSON"))
        }
    }
}

@Suite(.serialized) struct RerankerTests {
    @Test(arguments: ["tei", "cohere"])
    func crossEncoderReordersAndDegrades(_ flavor: String) async throws {
        let fake = try await onThread { try FakeProvider() }
        for model in ["ok", "unreachable"] {
            // TEI requests carry no model name, so failure is an unreachable server for both shapes.
            var p = RagServerConfiguration.Provider(flavor: .openai, url: model == "ok" ? fake.url : "http://127.0.0.1:1", model: model)
            p.retries = 0
            try await withRagServer(configure: { $0.rerankProvider = p; $0.rerankFlavor = flavor }) { client, _ in
                _ = try await client.index(Fixtures.documents, collection: "kb")
                let question = "sourdough starter flour water daily"
                let r = try await client.query(question, collection: "kb", topK: 2, mode: .keyword, noCache: true,
                                               rerank: Rerank.with { $0.method = "cross-encoder"; $0.candidates = 8 })
                if model == "ok" {
                    // The fake cross-encoder counts query words: "bread" has all five.
                    #expect(r.sources.first?.documentID == "bread")
                    #expect(r.sources.first?.score == 5 - Double(r.sources.first!.content.count) / 10000)
                    #expect(!r.degraded && r.timings.rerankSeconds > 0)
                } else {
                    #expect(r.degraded && r.degradedReason.contains("reranker"))
                    #expect(r.sources.first?.documentID == "bread")  // retrieval order kept
                }
            }
        }
        try await withRagServer { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            do {
                _ = try await client.query("x", collection: "kb", rerank: Rerank.with { $0.method = "cross-encoder" })
                Issue.record("expected FAILED_PRECONDITION")
            } catch { #expect(RagError(from: error).code == .failedPrecondition) }
        }
    }
}
