import RagEngine
import Synchronization

/// Caches query embeddings: with a remote model the embedder call is the most
/// expensive step of a query, and popular questions repeat.
public final class EmbeddingCache: Sendable {
    let lru: LRUCache<[Float]>
    let counts = Mutex((hits: UInt64(0), misses: UInt64(0)))
    let ttl: Duration

    public init(capacityBytes: Int = 16 * 1024 * 1024, ttl: Duration = .seconds(3600)) {
        lru = LRUCache(capacityBytes: capacityBytes)
        self.ttl = ttl
    }

    /// The cached embedding of `text`, or `embedder`'s, computed in `lane` when
    /// given (a hit never waits for a busy lane).
    public func embed(_ text: String, with embedder: any Embedder, in lane: WorkLane? = nil) async throws -> [Float] {
        let key = embedder.id + "\u{1F}" + text
        if let v = lru.get(key) {
            counts.withLock { $0.hits += 1 }
            return v
        }
        counts.withLock { $0.misses += 1 }
        let computed = if let lane { try await lane.run { try await embedder.embed([text]) } } else { try await embedder.embed([text]) }
        guard let v = computed.first else { return [] }
        lru.set(key, v, bytes: v.count * 4, ttl: ttl)
        return v
    }

    public var stats: (hits: UInt64, misses: UInt64) { counts.withLock { $0 } }
}
