/// Reciprocal rank fusion (Cormack et al. 2009): score = Σ 1 / (k + rank), rank from 1.
public enum Fusion {
    /// k = 10 rather than the paper's 60: a smaller k trusts the top of each list
    /// more. Development corpus, MiniLM hybrid over chunks, nDCG@10: k = 60 0.753,
    /// 30 0.757, 20 0.761, 10 0.763 (hit@1 0.601 → 0.611).
    public static let defaultK = 10.0

    /// Fuses ranked lists (best first) into one list of at most `limit` hits.
    /// A hit's text and metadata come from the first list that has it; ties
    /// break by `ChunkKey`.
    /// A list weight so small that the list never reorders the others' hits
    /// (for depths up to 1,000 and k = 10: the smallest step between two ranks
    /// there is 1/1011² ≈ 9.8e-7, this list adds at most 1e-6/11), yet breaks their exact
    /// ties and ranks its own hits after all of theirs.
    public static let fillInWeight = 1e-6

    public static func reciprocalRank(_ lists: [[Hit]], weights: [Double]? = nil, k: Double = defaultK, limit: Int) -> [Hit] {
        var fused: [ChunkKey: Hit] = [:]
        for (i, list) in lists.enumerated() {
            let w = weights.map { i < $0.count ? $0[i] : 1 } ?? 1
            for (rank, hit) in list.enumerated() {
                let add = w / (k + Double(rank + 1))
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

