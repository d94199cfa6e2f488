import Foundation
import RagClient
import RagCore
import RagServer
import RagTesting
import RagWire
import Testing

@Suite struct LRUCacheTests {
    @Test func evictsLeastRecentlyUsedToStayWithinBytes() {
        let lru = LRUCache<Int>(capacityBytes: 3 * (100 + 1 + 64))
        lru.set("a", 1, bytes: 100, ttl: .seconds(60))
        lru.set("b", 2, bytes: 100, ttl: .seconds(60))
        lru.set("c", 3, bytes: 100, ttl: .seconds(60))
        #expect(lru.get("a") == 1)  // a is now most recent
        lru.set("d", 4, bytes: 100, ttl: .seconds(60))  // evicts b
        #expect(lru.get("b") == nil)
        #expect(lru.get("a") == 1 && lru.get("c") == 3 && lru.get("d") == 4)
        #expect(lru.stats.evictions == 1)
        #expect(lru.stats.bytes <= lru.capacityBytes)
        lru.set("huge", 5, bytes: 10_000, ttl: .seconds(60))  // larger than the budget: not stored
        #expect(lru.get("huge") == nil && lru.stats.entries == 3)
    }

    @Test func entriesExpire() {
        let lru = LRUCache<String>(capacityBytes: 10_000)
        let now = ContinuousClock.now
        lru.set("k", "v", bytes: 1, ttl: .seconds(10), now: now)
        #expect(lru.get("k", now: now + .seconds(9)) == "v")
        #expect(lru.get("k", now: now + .seconds(11)) == nil)
        #expect(lru.stats.entries == 0)
    }
}

@Suite(.serialized) struct QueryCacheTests {
    func cacheStats(_ client: RagClient) async throws -> Ragd_V1_CacheStats { try await client.stats().cache }

    @Test func l1HitsEquivalentFiltersAndNoCache() async throws {
        try await withRagServer { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            let f1 = try FilterExpression.parse("lang = en and year >= 2000")
            let f2 = try FilterExpression.parse("year >= 2000 and lang = en")
            let first = try await client.query("How do I retry on SQLITE_BUSY?", collection: "kb", filter: f1)
            #expect(!first.cached)
            // Same question, other spacing and case, filter written in another order: one entry.
            let second = try await client.query("how do i   retry on sqlite_busy?", collection: "kb", filter: f2)
            #expect(second.cached && second.cacheLevel == "l1")
            #expect(second.sources.map(\.chunkID) == first.sources.map(\.chunkID))
            #expect(second.answer == first.answer)
            #expect(second.queryID != first.queryID)
            let skipped = try await client.query("How do I retry on SQLITE_BUSY?", collection: "kb", filter: f1, noCache: true)
            #expect(!skipped.cached)
            let k = try await cacheStats(client)
            #expect(k.l1Hits == 1 && k.misses == 1 && k.pipelineRuns == 2 && k.l2Backend == "sqlite")
            #expect(k.entries == 1 && k.bytesUsed > 0)
        }
    }

    @Test func neverStaleAfterAWrite() async throws {
        try await withRagServer { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            let before = try await client.query("zebra migration", collection: "kb", topK: 1)
            #expect(before.sources.first?.documentID != "zebra")
            _ = try await client.index([RagDocument(id: "zebra", text: "Zebra migration crosses the Mara river every year.")], collection: "kb")
            let after = try await client.query("zebra migration", collection: "kb", topK: 1)
            #expect(!after.cached)
            #expect(after.sources.first?.documentID == "zebra")
            _ = try await client.delete(["zebra"], collection: "kb")
            let gone = try await client.query("zebra migration", collection: "kb", topK: 1)
            #expect(!gone.cached)
            #expect(gone.sources.first?.documentID != "zebra")
            // Explicit invalidation.
            _ = try await client.query("zebra migration", collection: "kb", topK: 1)
            try await client.clearCache(collection: "kb")
            #expect(try await client.query("zebra migration", collection: "kb", topK: 1).cached == false)
            _ = try await client.query("zebra migration", collection: "kb", topK: 1)
            try await client.clearCache()
            #expect(try await client.query("zebra migration", collection: "kb", topK: 1).cached == false)
        }
    }

    @Test func sqliteL2SurvivesRestartAndIsPromoted() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let server = try await RagdProcess.launch(dataDirectory: dir)
            let c = server.client()
            _ = try await c.index(Fixtures.documents, collection: "kb")
            _ = try await c.query("leader election in raft", collection: "kb")
            await c.close()
            await server.stop()
        }
        let server = try await RagdProcess.launch(dataDirectory: dir)
        let c = server.client()
        let l2 = try await c.query("leader election in raft", collection: "kb")
        #expect(l2.cached && l2.cacheLevel == "l2")
        let l1 = try await c.query("leader election in raft", collection: "kb")
        #expect(l1.cached && l1.cacheLevel == "l1")
        await c.close()
    }

    @Test func concurrentIdenticalMissesRunThePipelineOnce() async throws {
        let slow = SlowEmbedder(delay: .milliseconds(500))
        try await withRagServer(embedder: slow) { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            let before = try await cacheStats(client)
            let answers = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<50 { group.addTask { try await client.query("slow: how is a raft leader elected", collection: "kb").answer } }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(answers.count == 50 && Set(answers).count == 1)
            let k = try await cacheStats(client)
            #expect(k.pipelineRuns - before.pipelineRuns == 1)
            // Under a loaded machine some of the 50 may arrive after the one run
            // finished: those are cache hits, not coalesced. Either way, one run.
            #expect((k.coalesced - before.coalesced) + (k.l1Hits - before.l1Hits) + (k.l2Hits - before.l2Hits) == 49)
        }
    }

    /// Servers configured with this share `redis` as their L2, with a budget no
    /// loaded CI machine misses: these tests count hits and Redis commands, and
    /// a missed budget turns a hit into a miss (at 2 s, one clean-clone CI run
    /// saw that). Timeouts are tested with the default budget: `redisDownOrSlow…`.
    static func sharing(_ redis: RedisProcess) -> (inout RagServerConfiguration) -> Void {
        { $0.sharedCache = .redis(host: "127.0.0.1", port: redis.port); $0.cache.l2Timeout = hangGuard }
    }

    @Test func redisL2SharedByTwoServersAndInvalidatedByWrites() async throws {
        let redis = try await RedisProcess.launch()
        let shared = Self.sharing(redis)
        try await withRagServer(configure: shared) { a, _ in
            try await withRagServer(configure: shared) { b, _ in
                _ = try await a.index(Fixtures.documents, collection: "kb")
                _ = try await b.index(Fixtures.documents, collection: "kb")  // same data on both
                let first = try await a.query("worker processes of nginx", collection: "kb")
                #expect(!first.cached)
                // B has the same catalog generation and reads A's answer from Redis.
                let fromB = try await b.query("worker processes of nginx", collection: "kb")
                #expect(fromB.cached && fromB.cacheLevel == "l2")
                #expect(fromB.answer == first.answer)
                // A write through A bumps the shared generation: B's L1 entry is dead too.
                _ = try await a.index([RagDocument(id: "extra", text: "Nothing about web servers.")], collection: "kb")
                _ = try await b.index([RagDocument(id: "extra", text: "Nothing about web servers.")], collection: "kb")
                let afterWrite = try await b.query("worker processes of nginx", collection: "kb")
                #expect(!afterWrite.cached)
                #expect(try await b.stats().cache.l2Backend == "redis")
            }
        }
        // Four writes, each bumped twice (before its commit and after).
        #expect(try redis.cli("GET", "ragd:gen:kb").trimmingCharacters(in: .whitespacesAndNewlines) == "8")
    }

    /// Redis losing its data resets the shared write counters; answers a server
    /// cached before must not become current again when the counter climbs back.
    @Test func redisLosingItsDataCannotMakeOldAnswersCurrentAgain() async throws {
        let redis = try await RedisProcess.launch()
        let shared = Self.sharing(redis)
        try await withRagServer(configure: shared) { a, _ in
            try await withRagServer(configure: shared) { b, _ in
                _ = try await a.index(Fixtures.documents, collection: "kb")
                _ = try await b.index(Fixtures.documents, collection: "kb")
                #expect(try await !b.query("worker processes of nginx", collection: "kb").cached)
                #expect(try await b.query("worker processes of nginx", collection: "kb").cacheLevel == "l1")
                _ = try redis.cli("FLUSHALL")
                // Writes through the other server bring the shared counter back to where it was.
                _ = try await a.index([RagDocument(id: "x1", text: "One more page.")], collection: "kb")
                _ = try await a.index([RagDocument(id: "x2", text: "Yet another page.")], collection: "kb")
                #expect(try await !b.query("worker processes of nginx", collection: "kb").cached)
            }
        }
    }

    @Test func redisDownOrSlowIsAMissNotAFailure() async throws {
        let redis = try await RedisProcess.launch()
        try await withRagServer(configure: { $0.sharedCache = .redis(host: "127.0.0.1", port: redis.port) }) { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            _ = try await client.query("crontab time fields", collection: "kb")
            // Slow: Redis blocked for 2 s; queries answer (as misses) well before that.
            let sleeper = Thread { _ = try? redis.cli("DEBUG", "SLEEP", "2") }
            sleeper.start()
            try await Task.sleep(for: .milliseconds(100))
            let r = try await client.query("tcp handshake", collection: "kb")
            #expect(!r.sources.isEmpty)
            #expect(sleeper.isExecuting, "the query waited for the sleeping Redis")
            // Down: the query still answers.
            redis.stop()
            let down = try await client.query("git rebase conflict", collection: "kb")
            #expect(!down.sources.isEmpty && !down.cached)
            let k = try await cacheStats(client)
            #expect(k.errors >= 2)
        }
    }
}
