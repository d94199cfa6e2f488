import RagEngine

/// The texts of recently answered chunks. Partitions keep texts on disk, so
/// every answer reads its hits' texts (~15–40 µs per partition locally, a
/// round trip from a shard node); popular chunks come from here instead.
/// Keyed by the document's content hash, which covers its text, metadata and
/// chunking: an entry can never hold another version's text, and a replaced
/// document's old entries just age out. Bounded by bytes (LRU).
public final class ChunkTextCache: Sendable {
    let lru: LRUCache<String>

    /// `capacityBytes` 0: nothing is cached.
    public init(capacityBytes: Int) {
        lru = LRUCache(capacityBytes: capacityBytes)
    }

    static func key(_ chunk: ChunkKey, _ contentHash: UInt64) -> String {
        "\(contentHash)\u{1F}\(chunk.ordinal)\u{1F}\(chunk.documentID)"
    }

    func text(_ chunk: ChunkKey, contentHash: UInt64) -> String? {
        guard lru.capacityBytes > 0, contentHash != 0 else { return nil }
        return lru.get(Self.key(chunk, contentHash))
    }

    func store(_ text: String, for chunk: ChunkKey, contentHash: UInt64) {
        guard lru.capacityBytes > 0, contentHash != 0 else { return }
        // Content-addressed: never stale, so no time limit beyond eviction.
        lru.set(Self.key(chunk, contentHash), text, bytes: text.utf8.count, ttl: .seconds(7 * 86_400))
    }
}
