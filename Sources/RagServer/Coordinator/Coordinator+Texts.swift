import RagCore
import RagEngine
import Tracing

extension Coordinator {
    /// Searches (and text reads) made before hits of documents replaced in
    /// between are left out.
    static let textAttempts = 3

    /// Reads the texts of `hits` from the shards that scored them, one call
    /// per shard. A hit whose document changed since it was scored
    /// (`changed`) is left out; with `allowPartial`, so are the hits of a
    /// shard that fails (`missing`).
    func attachTexts(_ hits: [Hit], shards: [any Shard], allowPartial: Bool) async throws -> (hits: [Hit], changed: Int, missing: [Int]) {
        var hits = hits
        for i in hits.indices where hits[i].text.isEmpty {
            if let t = textCache.text(hits[i].key, contentHash: hits[i].contentHash) { hits[i].text = t }
        }
        let wanted = Dictionary(grouping: hits.filter { $0.text.isEmpty }, by: \.partition)
            .mapValues { Dictionary($0.map { ($0.key, $0.contentHash) }, uniquingKeysWith: { a, _ in a }) }
        guard !wanted.isEmpty else { return (hits, 0, []) }
        let involved = shards.filter { wanted[$0.partition] != nil }
        // Like the searches: in line for small local partitions (a read takes
        // ~15 µs there), side by side otherwise (a cold read of a large file,
        // or a round trip to a node).
        let read: @Sendable (any Shard) async throws -> [ChunkKey: String] = { shard in
            try await withSpan("texts partition \(shard.partition)") { _ in try await shard.texts(wanted[shard.partition]!) }
        }
        var texts: [ChunkKey: String] = [:]
        var missing: [Int] = []
        let parts: [[ChunkKey: String]]
        if allowPartial {
            (parts, missing) = await fanOutPartial(involved, read)
        } else {
            parts = try await fanOut(involved, read)
        }
        for p in parts { texts.merge(p) { a, _ in a } }
        var out: [Hit] = []
        out.reserveCapacity(hits.count)
        var changed = 0
        for var h in hits {
            if h.text.isEmpty {
                guard let t = texts[h.key] else {
                    if !missing.contains(h.partition) { changed += 1 }
                    continue
                }
                h.text = t
                textCache.store(t, for: h.key, contentHash: h.contentHash)
            }
            out.append(h)
        }
        return (out, changed, missing)
    }
}
