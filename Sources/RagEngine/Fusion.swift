/// Reciprocal rank fusion (Cormack et al. 2009): score = Σ 1 / (k + rank), rank from 1.
public enum Fusion {
    public static let defaultK = 60.0

    /// Fuses ranked lists (best first) into one list of at most `limit` hits.
    /// A hit's text and metadata come from the first list that has it; ties
    /// break by `ChunkKey`.
    public static func reciprocalRank(_ lists: [[Hit]], k: Double = defaultK, limit: Int) -> [Hit] {
        var fused: [ChunkKey: Hit] = [:]
        for list in lists {
            for (rank, hit) in list.enumerated() {
                let add = 1.0 / (k + Double(rank + 1))
                if var existing = fused[hit.key] {
                    existing.score += add
                    fused[hit.key] = existing
                } else {
                    var h = hit
                    h.score = add
                    fused[hit.key] = h
                }
            }
        }
        return HitMerge.topK([Array(fused.values)], k: limit)
    }
}
