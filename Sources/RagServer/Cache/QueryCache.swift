import Foundation
import Tracing
import Logging
import RagCore
import Synchronization

/// Two-level cache of query answers: an in-process LRU bounded by bytes (L1)
/// in front of a shared L2 (SQLite or Redis), with single-flight coalescing of
/// identical misses. L2 trouble is a miss, logged at most once per interval.
public final class QueryCache: Sendable {
    public struct Settings: Sendable {
        public var enabled = true
        public var l1Bytes = 64 * 1024 * 1024
        public var ttl: Duration = .seconds(3600)
        public var l2Timeout: Duration = .milliseconds(50)
        public init() {}
    }

    struct Counters {
        var l1Hits: UInt64 = 0
        var l2Hits: UInt64 = 0
        var misses: UInt64 = 0
        var errors: UInt64 = 0
        var pipelineRuns: UInt64 = 0
        var coalesced: UInt64 = 0
        var lastErrorLog: ContinuousClock.Instant?
    }

    public let settings: Settings
    public let l2: (any SharedCache)?
    let l1: LRUCache<Data>
    let flights = SingleFlight()
    let counters = Mutex(Counters())
    let pendingBumps = Mutex(Set<String>())
    let metrics: RagMetrics?
    let logger: Logger

    public init(settings: Settings, l2: (any SharedCache)?, metrics: RagMetrics?, logger: Logger) {
        self.settings = settings
        self.l2 = l2
        self.l1 = LRUCache(capacityBytes: settings.l1Bytes)
        self.metrics = metrics
        self.logger = logger
    }

    /// A stable key: FNV-1a (two seeds, 128 bits) over the canonical description
    /// of everything that decides the answer.
    ///
    /// Case is folded only when `foldCase` says the pipeline ignores it (a local
    /// uncased embedder and the extractive generator): a model provider sees the
    /// question as typed, so there case can change the answer.
    public static func key(_ q: QueryOptions, generation: String, configuration: String, variant: String = "", foldCase: Bool = true) -> String {
        // Per scalar, as the tokenizers fold it (String.lowercased() has context rules).
        let text = foldCase ? String(String.UnicodeScalarView(q.query.unicodeScalars.flatMap { $0.properties.lowercaseMapping.unicodeScalars })) : q.query
        let normalized = text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        let material = [
            "v2", q.collection, generation, normalized, "\(q.topK ?? 0)", q.mode.rawValue,
            q.filter?.canonical ?? "-", q.rerank?.canonical ?? "-", "\(q.answerMaxCharacters ?? 0)", q.strict ? "strict" : "lenient",
            configuration, variant,
        ].joined(separator: "\u{1F}")
        let a = StableHash.fnv1a(material)
        let b = StableHash.fnv1a(material, seed: 0x9E37_79B9_7F4A_7C15)
        // Fixed width: two unpadded hex numbers side by side would be ambiguous.
        return hex16(a) + hex16(b)
    }

    static func hex16(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    func l2Failed(_ error: any Error) {
        let shouldLog = counters.withLock { c -> Bool in
            c.errors += 1
            if let last = c.lastErrorLog, ContinuousClock.now - last < .seconds(30) { return false }
            c.lastErrorLog = .now
            return true
        }
        metrics?.cacheRequest(level: "l2", result: "error")
        if shouldLog { logger.warning("L2 cache unavailable, serving misses: \(RagError(from: error).message)") }
    }

    /// Runs `body` with a time limit; nil on timeout or error (counted).
    func bounded<T: Sendable>(generation: Bool = false, _ body: @escaping @Sendable () async throws -> T) async -> T? {
        // The timeout is a network budget (Redis); a local SQLite file gets at least a
        // second, and a consensus store's generation calls their own budget.
        var timeout = l2 is SQLiteSharedCache ? max(settings.l2Timeout, .seconds(1)) : settings.l2Timeout
        if generation, let authority = l2 as? any GenerationAuthority { timeout = max(timeout, authority.generationTimeout) }
        let limit = timeout
        do {
            guard let value = try await withTimeout(limit, body) else {
                throw RagError(.deadlineExceeded, "L2 cache did not answer within \(limit)")
            }
            return value
        } catch {
            if !(error is CancellationError) { l2Failed(error) }
            return nil
        }
    }

    /// The shared generation of a collection, or nil when the L2 cannot say, or
    /// when a write's bump has not reached the L2 yet (then the cache is skipped
    /// for that collection, reads and stores: better a miss than a stale answer).
    func sharedGeneration(_ collection: String) async -> Int64? {
        guard let l2 else { return 0 }
        if pendingBumps.withLock({ $0.contains(collection) }) { return nil }
        return await bounded(generation: true) { try await l2.generation(collection) }
    }

    /// The cached answer for `key`, or the result of `compute`, stored in both
    /// levels only when `compute` says it may be (a degraded answer — a provider
    /// outage's fallback — is served once, never cached).
    /// Returns the bytes and where they came from ("l1", "l2" or "" when computed).
    public func value(for key: String, compute: @escaping @Sendable () async throws -> (Data, cacheable: Bool)) async throws -> (Data, String) {
        if let hit = withSpan("cache l1", { span in
            let hit = l1.get(key)
            span.attributes["ragd.cache.result"] = hit == nil ? "miss" : "hit"
            return hit
        }) {
            counters.withLock { $0.l1Hits += 1 }
            metrics?.cacheRequest(level: "l1", result: "hit")
            return (hit, "l1")
        }
        metrics?.cacheRequest(level: "l1", result: "miss")
        if let l2, let found = await withSpan("cache l2", { span in
            let found = await bounded({ try await l2.get(key) })
            span.attributes["ragd.cache.result"] = found.map { $0 == nil ? "miss" : "hit" } ?? "unavailable"
            return found
        }) {
            if let hit = found {
                counters.withLock { $0.l2Hits += 1 }
                metrics?.cacheRequest(level: "l2", result: "hit")
                l1.set(key, hit, bytes: hit.count, ttl: settings.ttl)
                return (hit, "l2")
            }
            metrics?.cacheRequest(level: "l2", result: "miss")
        }
        let ttl = settings.ttl
        let (data, joined) = try await flights.run(key) { [self] in
            // A flight for this key may have finished between our L1 look-up and
            // now: its answer is in L1, so this is a hit, not a second run.
            if let hit = l1.get(key) {
                counters.withLock { $0.l1Hits += 1 }
                return hit
            }
            counters.withLock { $0.misses += 1; $0.pipelineRuns += 1 }
            let (data, cacheable) = try await compute()
            guard cacheable else { return data }
            l1.set(key, data, bytes: data.count, ttl: ttl)
            if let l2 { _ = await bounded { try await l2.set(key, data, ttl: ttl) } }
            return data
        }
        if joined { counters.withLock { $0.coalesced += 1; $0.misses += 1 } }
        return (data, "")
    }

    /// Counts a query computed without the cache (no_cache, or generation unknown).
    func countBypass() {
        counters.withLock { $0.pipelineRuns += 1 }
    }

    /// Lets go of the second level's files or connections (at shutdown).
    public func close() async { await l2?.close() }

    public func clear() async {
        l1.removeAll()
        if let l2 { _ = await bounded { try await l2.clear() } }
    }

    /// Moves the collection's shared generation on before a write commits, so
    /// that every server sharing the L2 stops serving answers computed before it.
    /// If the L2 does not take it, the write must not happen: UNAVAILABLE, and
    /// nothing is committed. (A write is never acknowledged while servers that
    /// share the cache could go on serving answers from before it.)
    public func prepareWrite(_ collection: String) async throws {
        guard let l2, !(l2 is SQLiteSharedCache) else { return }  // one server: the catalog generation suffices
        guard await bounded(generation: true, { try await l2.bumpGeneration(collection) }) != nil else {
            throw RagError(.unavailable, "the shared cache (\(l2.name)) did not take this write's generation bump, so other servers "
                               + "could serve answers from before it; nothing was written: retry")
        }
    }

    /// Moves the collection's shared generation on after a write (answers computed
    /// while the write committed may have cached its old state). If the L2 does
    /// not take the bump (down, slow, cancelled), this server bypasses the cache
    /// for the collection until a retry succeeds; it never goes on as if the
    /// bump had happened. (Other servers sharing the L2 cannot reach it either
    /// while it is down, so they bypass too; see README "Cache".)
    public func bumpGeneration(_ collection: String) async {
        guard let l2 else { return }
        if await bounded(generation: true, { try await l2.bumpGeneration(collection) }) != nil { return }
        let start = pendingBumps.withLock { $0.insert(collection).inserted }
        logger.warning("cache generation of \(collection) could not be bumped; bypassing the cache for it until a retry succeeds")
        guard start else { return }
        Task.detached { [self] in await retryBump(collection) }
    }

    /// Retries a bump with backoff (100 ms doubling to 2 s) until it succeeds.
    func retryBump(_ collection: String) async {
        var attempt = 1
        while true {
            try? await Task.sleep(for: min(.seconds(2), Duration.backoff(base: .milliseconds(100), retry: min(attempt, 10), jitter: 0.75...1.25)))
            if let l2, await bounded(generation: true, { try await l2.bumpGeneration(collection) }) != nil { break }
            attempt += 1
        }
        pendingBumps.withLock { _ = $0.remove(collection) }
        logger.info("cache generation of \(collection) bumped; caching it again")
    }

    public struct Snapshot: Sendable {
        public var l1Hits, l2Hits, misses, errors, pipelineRuns, coalesced, evictions: UInt64
        public var entries, bytes: Int
        public var hitRate: Double { let h = l1Hits + l2Hits; return h + misses == 0 ? 0 : Double(h) / Double(h + misses) }
    }

    public func snapshot() -> Snapshot {
        let c = counters.withLock { $0 }
        let s = l1.stats
        return Snapshot(l1Hits: c.l1Hits, l2Hits: c.l2Hits, misses: c.misses, errors: c.errors, pipelineRuns: c.pipelineRuns,
                        coalesced: c.coalesced, evictions: s.evictions, entries: s.entries, bytes: s.bytes)
    }
}
