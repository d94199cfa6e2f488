/// Scores (query, passage) pairs jointly, e.g. a cross-encoder model. Higher is better.
public protocol Reranker: Sendable {
    var id: String { get }
    func scores(query: String, passages: [String]) async throws -> [Double]
}

extension Reranker {
    /// The hits reordered by the reranker's scores (ties keep retrieval order),
    /// with those scores, cut to `k`.
    public func rerank(query: String, hits: [Hit], k: Int) async throws -> [Hit] {
        let s = try await scores(query: query, passages: hits.map(\.text))
        precondition(s.count == hits.count)
        return hits.indices.sorted { s[$0] != s[$1] ? s[$0] > s[$1] : $0 < $1 }.prefix(k).map { i in
            var h = hits[i]
            h.score = s[i]
            return h
        }
    }
}
