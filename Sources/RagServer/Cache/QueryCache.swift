import Foundation
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
    public static func key(_ q: QueryOptions, generation: String, configuration: String, variant: String = "") -> String {
        let normalized = q.query.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
        let material = [
            "v1", q.collection, generation, normalized, "\(q.topK ?? 0)", q.mode.rawValue,
            q.filter?.canonical ?? "-", q.rerank?.canonical ?? "-", "\(q.answerMaxCharacters ?? 0)", configuration, variant,
        ].joined(separator: "\u{1F}")
        let a = StableHash.fnv1a(material)
        let b = StableHash.fnv1a(material, seed: 0x9E37_79B9_7F4A_7C15)
        return String(a, radix: 16) + String(b, radix: 16)
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
    func bounded<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async -> T? {
        // The timeout is a network budget (Redis); a local SQLite file gets at least a second.
        let timeout = l2 is SQLiteSharedCache ? max(settings.l2Timeout, .seconds(1)) : settings.l2Timeout
        do {
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { try await body() }
                group.addTask { try await Task.sleep(for: timeout); return nil }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let value = first else {
                    throw RagError(.deadlineExceeded, "L2 cache did not answer within \(timeout)")
                }
                return value
            }
        } catch {
            if !(error is CancellationError) { l2Failed(error) }
            return nil
        }
    }

    /// The shared generation of a collection, or nil when the L2 cannot say
    /// (then the cache is skipped: better a miss than a stale answer).
    func sharedGeneration(_ collection: String) async -> Int64? {
        guard let l2 else { return 0 }
        return await bounded { try await l2.generation(collection) }
    }

    /// The cached answer for `key`, or the result of `compute` (stored in both levels).
    /// Returns the bytes and where they came from ("l1", "l2" or "" when computed).
    public func value(for key: String, compute: @escaping @Sendable () async throws -> Data) async throws -> (Data, String) {
        if let hit = l1.get(key) {
            counters.withLock { $0.l1Hits += 1 }
            metrics?.cacheRequest(level: "l1", result: "hit")
            return (hit, "l1")
        }
        metrics?.cacheRequest(level: "l1", result: "miss")
        if let l2, let found = await bounded({ try await l2.get(key) }) {
            if let hit = found {
                counters.withLock { $0.l2Hits += 1 }
                metrics?.cacheRequest(level: "l2", result: "hit")
                l1.set(key, hit, bytes: hit.count, ttl: settings.ttl)
                return (hit, "l2")
            }
            metrics?.cacheRequest(level: "l2", result: "miss")
        }
        counters.withLock { $0.misses += 1 }
        let ttl = settings.ttl
        let (data, joined) = try await flights.run(key) { [self] in
            counters.withLock { $0.pipelineRuns += 1 }
            let data = try await compute()
            l1.set(key, data, bytes: data.count, ttl: ttl)
            if let l2 { _ = await bounded { try await l2.set(key, data, ttl: ttl) } }
            return data
        }
        if joined { counters.withLock { $0.coalesced += 1 } }
        return (data, "")
    }

    /// Counts a query computed without the cache (no_cache, or generation unknown).
    func countBypass() {
        counters.withLock { $0.pipelineRuns += 1 }
    }

    public func clear() async {
        l1.removeAll()
        if let l2 { _ = await bounded { try await l2.clear() } }
    }

    public func bumpGeneration(_ collection: String) async {
        if let l2 { _ = await bounded { try await l2.bumpGeneration(collection) } }
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
