import Foundation
import RagClient
import RagCore
import RagTesting
import Testing

/// Against a real `ragd` child process on loopback with its own SQLite files.
@Suite(.serialized) struct EndToEndTests {
    @Test func answersWithTheRightSourcesAndRestartKeepsThem() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var before: [String: [String]] = [:]
        do {
            let server = try await RagdProcess.launch(dataDirectory: dir)
            let client = server.client()
            let r = try await client.index(Fixtures.documents, collection: "kb")
            #expect(r.documents == UInt32(Fixtures.documents.count))
            #expect(r.chunks >= r.documents)
            for mode in SearchMode.allCases {
                for (question, expected) in Fixtures.questions {
                    let answer = try await client.query(question, collection: "kb", topK: 3, mode: mode)
                    let ids = answer.sources.map(\.documentID)
                    #expect(ids.contains(expected), "\(mode): \(question) -> \(ids)")
                    #expect(answer.mode == mode.wire)
                    if mode == .hybrid { before[question] = answer.sources.map(\.chunkID) }
                }
            }
            let top = try await client.query("what does SQLITE_BUSY mean", collection: "kb")
            #expect(top.answer.contains("[1]"))
            #expect(top.sources.count == 5)
            #expect(top.timings.totalSeconds > 0)
            // A graceful stop exits 0.
            await client.close()
            #expect(await server.stop() == 0)
        }
        let again = try await RagdProcess.launch(dataDirectory: dir)
        let client = again.client()
        for (question, chunks) in before {
            let answer = try await client.query(question, collection: "kb", topK: 3, mode: .hybrid)
            #expect(answer.sources.map(\.chunkID) == chunks)
        }
        let stats = try await client.stats(collection: "kb")
        #expect(stats.collections.first?.documents == UInt64(Fixtures.documents.count))
        #expect(stats.collections.first?.partitions.count == 4)
        await client.close()
    }

    @Test func acknowledgedIndexSurvivesKill9() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await RagdProcess.launch(dataDirectory: dir)
        let client = server.client()
        let docs = (0..<200).map { RagDocument(id: "doc-\($0)", text: "Document number \($0) about item\($0) and shared words.") }
        for start in stride(from: 0, to: docs.count, by: 50) {
            _ = try await client.index(Array(docs[start..<start + 50]), collection: "durable")
        }
        _ = try await client.delete(["doc-7"], collection: "durable")
        await server.crash()  // straight after the acknowledgements: no shutdown, no flush
        await client.close()

        let again = try await RagdProcess.launch(dataDirectory: dir)
        let c2 = again.client()
        let stats = try await c2.stats(collection: "durable")
        #expect(stats.collections.first?.documents == 199)
        let hit = try await c2.query("item123", collection: "durable", topK: 1, mode: .keyword)
        #expect(hit.sources.first?.documentID == "doc-123")
        let gone = try await c2.query("item7", collection: "durable", topK: 5, mode: .keyword)
        #expect(!gone.sources.contains { $0.documentID == "doc-7" })
        await c2.close()
    }

    @Test func streamTokensConcatenateToTheQueryAnswer() async throws {
        try await withRagServer { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            for (question, _) in Fixtures.questions.prefix(4) {
                let full = try await client.query(question, collection: "kb")
                var tokens: [String] = []
                var sources: [String] = []
                var sawDone = false
                for try await event in try await client.stream(question, collection: "kb") {
                    switch event.event {
                    case .sources(let s):
                        #expect(tokens.isEmpty, "sources come first")
                        sources = s.sources.map(\.chunkID)
                    case .token(let t): tokens.append(t)
                    case .done: sawDone = true
                    case nil: Issue.record("empty event")
                    }
                }
                #expect(sawDone)
                #expect(tokens.count > 1)
                #expect(tokens.joined() == full.answer)
                #expect(sources == full.sources.map(\.chunkID))
            }
        }
    }

    @Test func reindexReplacesAndDeleteRemoves() async throws {
        try await withRagServer { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            let same = try await client.index(Fixtures.documents, collection: "kb")
            #expect(same.unchanged == UInt32(Fixtures.documents.count))
            #expect(same.documents == 0)

            let replaced = try await client.index([RagDocument(id: "cron", text: "Completely new text about zebras and giraffes.")], collection: "kb")
            #expect(replaced.replaced == 1)
            let old = try await client.query("five time fields of a crontab line", collection: "kb", topK: 10, mode: .keyword)
            #expect(!old.sources.contains { $0.documentID == "cron" })
            let new = try await client.query("zebras giraffes", collection: "kb", topK: 1)
            #expect(new.sources.first?.documentID == "cron")
            #expect(new.sources.first?.content.contains("zebras") == true)

            let deleted = try await client.delete(["cron", "no-such-doc"], collection: "kb")
            #expect(deleted.deleted == 1)
            #expect(deleted.notFound == ["no-such-doc"])
            let after = try await client.query("zebras giraffes", collection: "kb", topK: 10)
            #expect(!after.sources.contains { $0.documentID == "cron" })
            let stats = try await client.stats(collection: "kb")
            #expect(stats.collections.first?.documents == UInt64(Fixtures.documents.count - 1))
        }
    }

    @Test func filtersApplyBeforeTopK() async throws {
        try await withRagServer { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            let fr = try await client.query("starter flour water", collection: "kb", topK: 3, filter: try FilterExpression.parse("lang = fr"))
            #expect(fr.sources.map(\.documentID) == ["pain"])
            let old = try await client.query("anything at all", collection: "kb", topK: 10, filter: try FilterExpression.parse("year < 2000"), mode: .vector)
            #expect(Set(old.sources.map(\.documentID)) == ["tcp", "cron"])
            let none = try await client.query("sqlite", collection: "kb", filter: try FilterExpression.parse("missing_key = 1"))
            #expect(none.sources.isEmpty)
            #expect(none.answer == "No relevant passages were found.")
        }
    }

    @Test func fiftyConcurrentQueriesOnOneConnection() async throws {
        try await withRagServer { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            let expected = Dictionary(uniqueKeysWithValues: Fixtures.questions)
            try await withThrowingTaskGroup(of: (String, String?).self) { group in
                for i in 0..<50 {
                    let (question, _) = Fixtures.questions[i % Fixtures.questions.count]
                    group.addTask {
                        let r = try await client.query(question, collection: "kb", topK: 1)
                        return (question, r.sources.first?.documentID)
                    }
                }
                var n = 0
                for try await (question, top) in group {
                    #expect(top == expected[question], "\(question)")
                    n += 1
                }
                #expect(n == 50)
            }
            let stats = try await client.stats()
            #expect(stats.queriesTotal == 50)
            #expect(stats.latency.contains { $0.component == "total" && $0.count == 50 })
        }
    }

    @Test func clientReconnectsAfterServerRestart() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try await RagdProcess.launch(dataDirectory: dir)
        let port = first.port
        let client = first.client()
        _ = try await client.health()
        await first.crash()
        await #expect(throws: RagError.self) { _ = try await client.health() }
        let second = try await RagdProcess.launch(dataDirectory: dir, port: port)
        #expect(second.port == port)
        let h = try await client.health()
        #expect(h.status == "SERVING")
        await client.close()
    }
}

@Suite struct RerankTests {
    @Test func mmrThroughTheServerDiversifiesAndValidates() async throws {
        try await withRagServer { client, _ in
            // Three near-identical documents and one different but relevant one.
            var docs = (0..<3).map { RagDocument(id: "dup\($0)", text: "Raft leader majority: Raft elects a leader by majority. Copy \($0).") }
            docs.append(RagDocument(id: "other", text: "Followers replicate log entries; an entry commits once a majority of servers stores it, under the current Raft leader."))
            _ = try await client.index(docs, collection: "kb")
            let plain = try await client.query("raft leader majority", collection: "kb", topK: 2, mode: .vector)
            #expect(plain.sources.allSatisfy { $0.documentID.hasPrefix("dup") })
            let mmr = try await client.query("raft leader majority", collection: "kb", topK: 2, mode: .vector,
                                             rerank: Rerank.with { $0.method = "mmr"; $0.lambda = 0.5 })
            #expect(mmr.sources.map(\.documentID).contains("other"))
            #expect(mmr.timings.rerankSeconds > 0)
            do {
                _ = try await client.query("raft", collection: "kb", rerank: Rerank.with { $0.method = "cross-magic" })
                Issue.record("expected INVALID_ARGUMENT")
            } catch { #expect(RagError(from: error).code == .invalidArgument) }
            do {
                _ = try await client.query("raft", collection: "kb", rerank: Rerank.with { $0.method = "mmr"; $0.lambda = 2 })
                Issue.record("expected INVALID_ARGUMENT")
            } catch { #expect(RagError(from: error).code == .invalidArgument) }
        }
    }
}
