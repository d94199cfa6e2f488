import Foundation
import RagCore
import RagEngine

/// Embeddings from a model server: OpenAI-compatible `POST /v1/embeddings`
/// (OpenAI, vLLM, llama.cpp, LM Studio, TEI's OpenAI route) or Ollama
/// `POST /api/embed`. Vectors are L2-normalised so inner product is cosine.
public struct HTTPEmbedder: Embedder {
    public typealias Flavor = ProviderFlavor

    public let flavor: Flavor
    public let model: String
    public let http: ProviderHTTP
    public let batchSize: Int
    public let dimension: Int
    public var id: String { "\(flavor.rawValue):\(model):\(dimension)" }

    /// Asks the server once for a probe vector to learn the dimension.
    public static func connect(flavor: Flavor, model: String, http: ProviderHTTP, batchSize: Int = 64) async throws -> HTTPEmbedder {
        let probe = HTTPEmbedder(flavor: flavor, model: model, http: http, batchSize: batchSize, dimension: 0)
        guard let v = try await probe.call(["dimension probe"]).first, !v.isEmpty else {
            throw RagError(.failedPrecondition, "embedding provider returned no vector for a probe")
        }
        return HTTPEmbedder(flavor: flavor, model: model, http: http, batchSize: batchSize, dimension: v.count)
    }

    init(flavor: Flavor, model: String, http: ProviderHTTP, batchSize: Int, dimension: Int) {
        self.flavor = flavor
        self.model = model
        self.http = http
        self.batchSize = max(1, batchSize)
        self.dimension = dimension
    }

    public func embed(_ texts: [String]) async throws -> [[Float]] {
        var out: [[Float]] = []
        for start in stride(from: 0, to: texts.count, by: batchSize) {
            let batch = Array(texts[start..<min(start + batchSize, texts.count)])
            let vectors = try await call(batch)
            guard vectors.count == batch.count else {
                throw RagError(.internal, "embedding provider returned \(vectors.count) vectors for \(batch.count) texts")
            }
            for var v in vectors {
                guard dimension == 0 || v.count == dimension else {
                    throw RagError(.internal, "embedding provider returned \(v.count) dimensions, expected \(dimension)")
                }
                VectorMath.normalize(&v)
                out.append(v)
            }
        }
        return out
    }

    func call(_ texts: [String]) async throws -> [[Float]] {
        struct OpenAIResponse: Decodable {
            struct Item: Decodable { var index: Int?; var embedding: [Float] }
            var data: [Item]
        }
        struct OllamaResponse: Decodable { var embeddings: [[Float]] }
        let body = try JSONSerialization.data(withJSONObject: ["model": model, "input": texts])
        let data = try await http.post(flavor == .openai ? "/v1/embeddings" : "/api/embed", body: body)
        do {
            switch flavor {
            case .openai:
                let r = try JSONDecoder().decode(OpenAIResponse.self, from: data)
                return r.data.enumerated().sorted { ($0.element.index ?? $0.offset) < ($1.element.index ?? $1.offset) }.map(\.element.embedding)
            case .ollama:
                return try JSONDecoder().decode(OllamaResponse.self, from: data).embeddings
            }
        } catch {
            throw RagError(.internal, "embedding provider sent a response that is not the expected JSON: \(String(decoding: data.prefix(120), as: UTF8.self))")
        }
    }
}
