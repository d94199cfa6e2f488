import Foundation
import RagCore
import RagEngine

/// A cross-encoder behind HTTP, in the two common shapes: Hugging Face TEI
/// (`POST /rerank {query, texts}` → `[{index, score}]`) and Cohere/Jina
/// (`POST /v1/rerank {model, query, documents}` → `{results: [{index, relevance_score}]}`).
public struct HTTPReranker: Reranker {
    public enum Flavor: String, Sendable { case tei, cohere }

    public let flavor: Flavor
    public let model: String
    public let http: ProviderHTTP
    public var id: String { "\(flavor.rawValue)-rerank:\(model)" }

    public init(flavor: Flavor, model: String, http: ProviderHTTP) {
        self.flavor = flavor
        self.model = model
        self.http = http
    }

    public func scores(query: String, passages: [String]) async throws -> [Double] {
        guard !passages.isEmpty else { return [] }
        struct Item: Decodable { var index: Int; var score: Double?; var relevance_score: Double? }
        struct Cohere: Decodable { var results: [Item] }
        let body: [String: Any] = flavor == .tei
            ? ["query": query, "texts": passages]
            : ["model": model, "query": query, "documents": passages, "top_n": passages.count]
        let data = try await http.post(flavor == .tei ? "/rerank" : "/v1/rerank", body: try JSONSerialization.data(withJSONObject: body))
        let items: [Item]
        do {
            items = flavor == .tei ? try JSONDecoder().decode([Item].self, from: data) : try JSONDecoder().decode(Cohere.self, from: data).results
        } catch {
            throw RagError(.internal, "reranker sent a response that is not the expected JSON: \(String(decoding: data.prefix(120), as: UTF8.self))")
        }
        var out = [Double](repeating: -.infinity, count: passages.count)
        for item in items where passages.indices.contains(item.index) {
            out[item.index] = item.score ?? item.relevance_score ?? -.infinity
        }
        return out
    }
}
