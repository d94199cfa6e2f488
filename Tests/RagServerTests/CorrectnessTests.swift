@testable import RagServer
import Foundation
import RagClient
import RagCore
import RagEngine
import RagTesting
import RagWire
import Synchronization
import Testing

/// Embeds like the hashing embedder, but fails any batch holding a text that
/// starts with "poison", after the other partitions' batches went through.
final class PoisonEmbedder: Embedder {
    let inner = HashingEmbedder()
    var id: String { inner.id }
    var dimension: Int { inner.dimension }
    func embed(_ texts: [String]) async throws -> [[Float]] {
        if texts.contains(where: { $0.hasPrefix("poison") }) {
            try await Task.sleep(for: .milliseconds(200))  // let every other partition finish embedding first
            throw RagError(.unavailable, "embedder refused a poisoned text")
        }
        return try await inner.embed(texts)
    }
}

/// Sleeps (blocking its thread, as BLAS or a busy model does) for every batch
/// of more than one text: indexing is slow, query embeddings are not.
final class BlockingEmbedder: Embedder {
    let inner = HashingEmbedder()
    let block: Duration
    var id: String { inner.id }
    var dimension: Int { inner.dimension }
    init(block: Duration) { self.block = block }
    func embed(_ texts: [String]) async throws -> [[Float]] {
        if texts.count > 1 { usleep(UInt32(block.inMicroseconds)) }
        return try await inner.embed(texts)
    }
}

@Suite(.serialized) struct CorrectnessTests {
    func provider(_ fake: FakeProvider, _ model: String) -> RagServerConfiguration.Provider {
        var p = RagServerConfiguration.Provider(flavor: .openai, url: fake.url, model: model, apiKeyEnvironment: "PATH")
        p.timeout = .seconds(2)
        p.retries = 0
        return p
    }

    /// #19.1: a provider outage's extractive fallback is served, never cached;
    /// strict callers never get it from the cache either.
    /// Index calls racing to create one collection all succeed and create it
    /// once (the registry's actor suspended in the catalog call, and a second
    /// call opened the collection again and failed on its unique name: INTERNAL).
    @Test func concurrentFirstWritesCreateACollectionOnce() async throws {
        try await withRagServer(configure: { $0.partitions = 8 }) { client, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<8 {
                    group.addTask { _ = try await client.index([RagDocument(id: "d\(i)", text: "racing writer \(i)")], collection: "fresh") }
                }
                try await group.waitForAll()
            }
            #expect(try await client.stats(collection: "fresh").collections.first?.documents == 8)
        }
    }

    @Test func degradedAnswersAreNeverCached() async throws {
        let fake = try await onThread { try FakeProvider() }
        // "flaky": the first two chat requests get 429, then the model answers.
        try await withRagServer(configure: { $0.generationProvider = provider(fake, "flaky") }) { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            let q = "what does SQLITE_BUSY mean"
            let first = try await client.query(q, collection: "kb")
            #expect(first.degraded && !first.cached)
            let second = try await client.query(q, collection: "kb")
            #expect(second.degraded && !second.cached, "a degraded answer was served from the cache")
            let recovered = try await client.query(q, collection: "kb")
            #expect(!recovered.degraded && !recovered.cached && recovered.answer == "The answer is in the sources [1].")
            let cached = try await client.query(q, collection: "kb")
            #expect(cached.cached && !cached.degraded && cached.answer == recovered.answer)
            // A strict caller has a key of its own: computed, not taken from the lenient entry.
            var strict = Ragd_V1_QueryRequest()
            strict.collection = "kb"
            strict.query = q
            strict.strict = true
            let s = try await client.call(.query, strict, as: Ragd_V1_QueryResponse.self, timeout: .seconds(30))
            #expect(!s.cached && !s.degraded)
        }
    }

    /// A chat stream that ends without its final marker is a failed generation
    /// (degraded, never cached), not an empty answer.
    @Test func aTruncatedChatStreamIsAFailure() async throws {
        let fake = try await onThread { try FakeProvider() }
        try await withRagServer(configure: { $0.generationProvider = provider(fake, "cut") }) { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            let r = try await client.query("what does SQLITE_BUSY mean", collection: "kb")
            #expect(r.degraded && r.degradedReason.contains("ended before") && r.answer.contains("[1]"))
            #expect(!(try await client.query("what does SQLITE_BUSY mean", collection: "kb").cached))
        }
    }

    /// Letter case is in the key when the answer can depend on it (a chat model sees the question as typed).
    @Test func caseIsPartOfTheKeyOnlyWhenItCanChangeTheAnswer() async throws {
        var q = QueryOptions(collection: "kb", query: "Leader Election")
        q.topK = 5
        let lower = { var c = q; c.query = "leader election"; return c }()
        #expect(QueryCache.key(q, generation: "1.0", configuration: "c", foldCase: true) == QueryCache.key(lower, generation: "1.0", configuration: "c", foldCase: true))
        #expect(QueryCache.key(q, generation: "1.0", configuration: "c", foldCase: false) != QueryCache.key(lower, generation: "1.0", configuration: "c", foldCase: false))
        var strict = q
        strict.strict = true
        #expect(QueryCache.key(q, generation: "1.0", configuration: "c") != QueryCache.key(strict, generation: "1.0", configuration: "c"))
    }

    /// #19.9: the key is two fixed-width hex numbers, never ambiguous.
    @Test func cacheKeysHaveFixedWidth() {
        #expect(QueryCache.hex16(0x1) == "0000000000000001")
        #expect(QueryCache.hex16(UInt64.max) == "ffffffffffffffff")
        var q = QueryOptions(collection: "kb", query: "x")
        q.topK = 5
        for text in ["x", "y", "a longer question", ""] {
            q.query = text
            #expect(QueryCache.key(q, generation: "0.0", configuration: "c").count == 32)
        }
    }

    /// #19.2: with a shared (Redis) cache, a write whose generation bump the
    /// cache refuses is not acknowledged and commits nothing, so no server that
    /// shares the cache can go on serving answers from before it.
    @Test func aWriteTheSharedCacheCannotInvalidateIsRefused() async throws {
        let redis = try await RedisProcess.launch()
        defer { redis.stop() }
        let cluster = try await LocalCluster.launch(shards: 1, replicas: 1)
        defer { cluster.stop() }
        let shared = ["--role", "coordinator", "--cluster", cluster.clusterFile] + TestCertificates.shared.clusterFlags + ["--cache-l2", "redis", "--redis", "127.0.0.1:\(redis.port)",
                      "--redis-timeout-ms", "2000"]
        let a = try await RagdProcess.launch(dataDirectory: cluster.root + "/coord-a", extraArguments: shared)
        let b = try await RagdProcess.launch(dataDirectory: cluster.root + "/coord-b", extraArguments: shared)
        let ca = a.client(), cb = b.client()
        _ = try await ca.index(Fixtures.documents, collection: "kb")
        _ = try await cb.index(Fixtures.documents, collection: "kb")  // B's catalog learns the collection (unchanged: no write)
        let q = "zebra crossing rules"
        let before = try await cb.query(q, collection: "kb", mode: .keyword)
        #expect(try await cb.query(q, collection: "kb", mode: .keyword).cached)

        // Redis refuses INCR (as a broken or read-only replica would): the write must fail and commit nothing.
        _ = try redis.cli("ACL", "SETUSER", "default", "-incr")
        let zebra = RagDocument(id: "zebra", text: "Zebra crossing rules: pedestrians have priority on a zebra crossing.")
        do {
            _ = try await ca.index([zebra], collection: "kb")
            Issue.record("a write the shared cache could not invalidate was acknowledged")
        } catch {
            #expect(RagError(from: error).code == .unavailable)
            #expect(RagError(from: error).message.contains("nothing was written"))
        }
        let meanwhile = try await ca.query(q, collection: "kb", mode: .keyword, noCache: true)
        #expect(!meanwhile.sources.contains { $0.documentID == "zebra" })

        _ = try redis.cli("ACL", "SETUSER", "default", "+incr")
        _ = try await ca.index([zebra], collection: "kb")
        let after = try await cb.query(q, collection: "kb", mode: .keyword)
        #expect(!after.cached && after.sources.first?.documentID == "zebra" && before.sources.first?.documentID != "zebra")
        await ca.close()
        await cb.close()
        await a.stop()
        await b.stop()
    }

    /// #19.6: a write that reports an error leaves nothing of itself visible, even
    /// when some partitions had finished their part.
    @Test func aFailedWriteCommitsNothing() async throws {
        try await withRagServer(configure: { $0.partitions = 4 }, embedder: PoisonEmbedder()) { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            // Twenty documents spread over the four partitions; one of them poisons its partition's batch.
            var docs = (0..<20).map { RagDocument(id: "batch-\($0)", text: "ordinary document number \($0) about kestrels") }
            docs[7].text = "poison in this one"
            do {
                _ = try await client.index(docs, collection: "kb")
                Issue.record("expected the poisoned batch to fail")
            } catch {
                #expect(RagError(from: error).message.contains("nothing of this write was committed"))
            }
            let stats = try await client.stats(collection: "kb")
            #expect(stats.collections.first?.documents == UInt64(Fixtures.documents.count))
            let r = try await client.query("kestrels", collection: "kb", mode: .keyword, noCache: true)
            #expect(!r.sources.contains { $0.documentID.hasPrefix("batch-") })
        }
    }

    /// #19.6: a deadline that passes while a batch embeds stops it before it
    /// commits, and the server's answer says so. (Sent as a raw frame: a client's
    /// own backstop could give up before the server's answer arrives.)
    @Test func aDeadlineBeforeTheCommitCommitsNothing() async throws {
        try await withRagServer(configure: { $0.partitions = 2; $0.embedBatchSize = 2 }, embedder: BlockingEmbedder(block: .milliseconds(150))) { client, server in
            let docs = (0..<24).map { RagDocument(id: "slow-\($0)", text: "a document that takes a while to embed, number \($0)") }
            var request = Ragd_V1_IndexRequest()
            request.collection = "kb"
            request.documents = docs.map { d in Ragd_V1_Document.with { $0.id = d.id; $0.text = d.text } }
            let conn = try RawConnection(port: server.localAddress!.port!)
            await conn.write(try RawConnection.request(1, "Index", try FrameCodec.bytes(request), deadlineMs: 400))
            let reply = try Ragd_V1_Frame(serializedBytes: try #require(await conn.nextFrame()))
            #expect(reply.kind == .error && reply.status == .deadlineExceeded)
            #expect(reply.statusMessage.contains("nothing of this write was committed"), "\(reply.statusMessage)")
            // The server answered after its work stopped: nothing of the call appears later either.
            let collections = try await client.listCollections()
            let stats = try await client.stats(collection: "kb")
            #expect(collections.isEmpty || stats.collections.first?.documents == 0)
        }
    }

    /// #19.6: a chunking profile whose index name would be too long is refused when
    /// the experiment is created, not on every later Index.
    @Test func longProfileIndexNamesAreRefusedAtCreation() async throws {
        try await withRagServer { client, _ in
            let collection = String(repeating: "c", count: 60)
            _ = try await client.index(Fixtures.documents, collection: collection)
            var e = Ragd_V1_Experiment()
            e.name = "chunks"
            e.collection = collection
            e.variants = [.with { $0.name = "control"; $0.ratio = 0.5 },
                          .with { $0.name = "small"; $0.ratio = 0.5; $0.config.chunking = .with { $0.name = "small"; $0.chunkSize = 200; $0.chunkOverlap = 20 } }]
            do {
                _ = try await client.call(.createExperiment, Ragd_V1_CreateExperimentRequest.with { $0.experiment = e }, as: Ragd_V1_CreateExperimentResponse.self, timeout: .seconds(30))
                Issue.record("expected INVALID_ARGUMENT")
            } catch {
                #expect(RagError(from: error).code == .invalidArgument)
                #expect(RagError(from: error).message.contains("shorter profile name"))
            }
            // Indexing into the collection still works and reports what it did.
            let r = try await client.index([RagDocument(id: "new", text: "A new document.")], collection: collection)
            #expect(r.documents == 1)
        }
    }

    /// #19.3: NFC and NFD spellings of one id are one document, before and after a restart.
    @Test func canonicallyEquivalentIdsAreOneDocument() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let nfd = "Cafe\u{301}.md", nfc = "Caf\u{E9}.md"
        #expect(Array(nfd.utf8) != Array(nfc.utf8))
        do {
            let server = try await RagdProcess.launch(dataDirectory: dir)
            let c = server.client()
            _ = try await c.index([RagDocument(id: nfd, text: "The first version mentions quokkas.")], collection: "kb")
            let second = try await c.index([RagDocument(id: nfc, text: "The second version mentions wombats.")], collection: "kb")
            #expect(second.replaced == 1 && second.documents == 1)
            #expect(try await c.stats(collection: "kb").collections.first?.documents == 1)
            await c.close()
            await server.stop()
        }
        let server = try await RagdProcess.launch(dataDirectory: dir)
        let c = server.client()
        #expect(try await c.stats(collection: "kb").collections.first?.documents == 1)
        let r = try await c.query("wombats", collection: "kb", mode: .keyword)
        #expect(r.sources.count == 1)
        #expect(Array(r.sources[0].documentID.utf8) == Array(nfc.utf8))  // stored and returned in NFC
        #expect(try await c.query("quokkas", collection: "kb", mode: .keyword).sources.isEmpty)
        let deleted = try await c.delete([nfd], collection: "kb")  // the NFD spelling finds it
        #expect(deleted.deleted == 1 && deleted.notFound.isEmpty)
        await c.close()
        await server.stop()
    }
}

/// `--vector-index int8` (int8 codes scanned, rescored exactly) and `hnsw`
/// (a graph per partition) answer vector queries with the ids and scores of
/// the exact scan; filtered graph searches are never short, deletes are never
/// returned, and a restarted server (its graph rebuilt) answers alike.
@Suite struct VectorIndexKindTests {
    @Test(arguments: ["int8", "hnsw"]) func serverAnswersAsTheExactOne(kind: String) async throws {
        let a = makeTemporaryDirectory(), b = makeTemporaryDirectory()
        defer { for d in [a, b] { try? FileManager.default.removeItem(atPath: d) } }
        let flat = try await RagdProcess.launch(dataDirectory: a)
        var other = try await RagdProcess.launch(dataDirectory: b, extraArguments: ["--vector-index", kind])
        defer { flat.kill9(); other.kill9() }
        let x = flat.client()
        var y = other.client()
        let docs = ClusterCorpus.documents
        for start in stride(from: 0, to: docs.count, by: 100) {
            let batch = Array(docs[start..<min(start + 100, docs.count)])
            _ = try await x.index(batch, collection: "kb")
            _ = try await y.index(batch, collection: "kb")
        }
        let gone = docs.map(\.id).filter { $0.hasSuffix("3") }
        _ = try await x.delete(gone, collection: "kb")
        _ = try await y.delete(gone, collection: "kb")
        var same = 0, total = 0
        var answers: [[String]] = []
        for (q, _) in ClusterCorpus.queries.prefix(40) {
            let r = try await x.query(q, collection: "kb", topK: 10, mode: .vector, noCache: true)
            let s = try await y.query(q, collection: "kb", topK: 10, mode: .vector, noCache: true)
            total += r.sources.count
            same += Set(r.sources.map(\.chunkID)).intersection(s.sources.map(\.chunkID)).count
            for h in s.sources { if let e = r.sources.first(where: { $0.chunkID == h.chunkID }) { #expect(e.score == h.score) } }
            #expect(!s.sources.contains { gone.contains($0.documentID) })
            answers.append(s.sources.map(\.chunkID))
        }
        #expect(total > 0 && Double(same) / Double(total) >= (kind == "int8" ? 0.99 : 0.95), "recall \(same)/\(total)")
        // Filters: as many hits as the exact scan, all admitted.
        for (q, filter) in ClusterCorpus.queries.prefix(60) where filter != nil {
            let r = try await x.query(q, collection: "kb", topK: 10, filter: filter, mode: .vector, noCache: true)
            let s = try await y.query(q, collection: "kb", topK: 10, filter: filter, mode: .vector, noCache: true)
            #expect(s.sources.count == r.sources.count, "\(q)")
        }
        await y.close()
        await other.stop()
        // A stopped server leaves each partition's index image beside it (with
        // the graph for hnsw), and the next start reads it.
        let images = ((try? FileManager.default.contentsOfDirectory(atPath: b + "/collections/kb")) ?? []).filter { $0.hasSuffix(".sqlite-image") }
        #expect(images.count == 4, "\(images)")
        let graphs = images.compactMap { FileManager.default.contents(atPath: b + "/collections/kb/" + $0) }.compactMap { PartitionIndex.imageGraph($0, dimension: 384) }
        #expect(graphs.count == (kind == "hnsw" ? 4 : 0))
        other = try await RagdProcess.launch(dataDirectory: b, extraArguments: ["--vector-index", kind])
        y = other.client()
        for ((q, _), before) in zip(ClusterCorpus.queries.prefix(40), answers) {
            #expect(try await y.query(q, collection: "kb", topK: 10, mode: .vector, noCache: true).sources.map(\.chunkID) == before)
        }
        // Writes the saved graphs do not know of, then kill -9: the next start
        // tombstones the deleted and changed chunks and inserts the new ones.
        let more = docs.filter { $0.id.hasSuffix("5") }.map { d in var d = d; d.text += " Revised."; return d }
        _ = try await y.index(more + [RagDocument(id: "zz-new", text: "An entirely new document about zeppelin hangars.")], collection: "kb")
        _ = try await y.delete(docs.map(\.id).filter { $0.hasSuffix("7") }, collection: "kb")
        other.kill9()
        other = try await RagdProcess.launch(dataDirectory: b, extraArguments: ["--vector-index", kind])
        await y.close()
        y = other.client()
        let z = try await y.query("zeppelin hangars", collection: "kb", topK: 3, mode: .vector, noCache: true)
        #expect(z.sources.first?.documentID == "zz-new")
        for (q, _) in ClusterCorpus.queries.prefix(40) {
            let s = try await y.query(q, collection: "kb", topK: 10, mode: .vector, noCache: true)
            #expect(s.sources.count == 10 && !s.sources.contains { $0.documentID.hasSuffix("7") || gone.contains($0.documentID) })
        }
        for c in [x, y] { await c.close() }
        let bad = try await run([RagdProcess.binary, "serve", "--vector-index", "hnsw-please", "--port", "0", "--data-dir", a])
        #expect(bad.status != 0 && bad.errors.contains("--vector-index must be exact, int8, hnsw or auto"), "\(bad.errors)")
    }
}

/// With the lexical built-in embedder, hybrid answers rank exactly as keyword
/// search (which scores better on the development corpus than fusing the two
/// as equals) and vector hits only fill the answer up to k.
@Suite struct LexicalFusionTests {
    @Test func hybridRanksByKeywordAndFillsUpToK() async throws {
        try await withRagServer { client, _ in
            _ = try await client.index(ClusterCorpus.documents, collection: "kb")
            var filled = 0
            for (q, _) in ClusterCorpus.queries.prefix(30) + [("quokka raft", nil)] {
                let kw = try await client.query(q, collection: "kb", topK: 10, mode: .keyword, noCache: true)
                let hy = try await client.query(q, collection: "kb", topK: 10, mode: .hybrid, noCache: true)
                #expect(Array(hy.sources.prefix(kw.sources.count).map(\.chunkID)) == kw.sources.map(\.chunkID), "\(q)")
                #expect(hy.sources.count == 10)
                if kw.sources.count < 10 { filled += 1 }
            }
            #expect(filled > 0, "some query should have had fewer than k keyword hits")
            let stats = try await client.stats()
            #expect(stats.embedder.hasPrefix("hashing") && stats.lexicalEmbedder)
        }
    }
}
