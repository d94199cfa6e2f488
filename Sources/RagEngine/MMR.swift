/// Maximal marginal relevance (Carbonell & Goldstein 1998): picks, one at a
/// time, the candidate maximising λ·relevance − (1−λ)·max similarity to those
/// already picked, so near-duplicate chunks give way to new information.
///
/// Relevance is the candidate's retrieval score divided by the best score (so it works for vector, BM25 and fused scores alike); similarity is
/// the inner product of the stored (unit) embeddings.
public enum MMR {
    public static let defaultLambda = 0.7

    /// `candidates` best first, `vectors[i]` the embedding of `candidates[i]`.
    /// The chosen hits keep their original scores, in MMR order.
    public static func rerank(_ candidates: [Hit], vectors: [[Float]], lambda: Double, k: Int) -> [Hit] {
        precondition(candidates.count == vectors.count)
        guard !candidates.isEmpty, k > 0 else { return [] }
        let top = candidates.map(\.score).max() ?? 1
        let relevance = candidates.map { top > 0 ? max(0, $0.score) / top : 1 }
        var chosen: [Int] = []
        var maxSim = [Double](repeating: -.infinity, count: candidates.count)
        var left = Set(candidates.indices)
        while chosen.count < min(k, candidates.count) {
            var best = -1
            var bestValue = -Double.infinity
            for i in left.sorted() {
                let diversity = chosen.isEmpty ? 0 : maxSim[i]
                let value = lambda * relevance[i] - (1 - lambda) * diversity
                // Ties: the better-ranked candidate (lower index) wins.
                if value > bestValue { bestValue = value; best = i }
            }
            chosen.append(best)
            left.remove(best)
            for i in left {
                maxSim[i] = max(maxSim[i], Double(VectorMath.dot(vectors[i], vectors[best])))
            }
        }
        return chosen.map { candidates[$0] }
    }
}
