import RagCore
import RagEngine
import RagWire

/// A validated query, free of wire types.
public struct QueryOptions: Sendable {
    public var collection: String
    public var query: String
    /// nil: the server's default.
    public var topK: Int?
    public var filter: MetadataFilter?
    public var mode: SearchMode
    public var userID: String
    public var noCache: Bool
    /// Answer from the shards that respond when some have no live replica.
    public var allowPartial: Bool
    public var rerank: RerankOptions?
    /// Extractive answer budget in characters (experiments); nil: the generator's default.
    public var answerMaxCharacters: Int?
    /// Error out instead of degrading when the model provider fails.
    public var strict = false

    public init(collection: String, query: String, topK: Int? = nil, filter: MetadataFilter? = nil, mode: SearchMode = .hybrid, userID: String = "",
                noCache: Bool = false, allowPartial: Bool = false) {
        self.allowPartial = allowPartial
        self.collection = collection
        self.query = query
        self.topK = topK
        self.filter = filter
        self.mode = mode
        self.userID = userID
        self.noCache = noCache
    }
}

/// Reranking of a deeper candidate list.
public struct RerankOptions: Sendable, Hashable {
    public enum Method: String, Sendable, Hashable { case mmr, crossEncoder = "cross-encoder" }
    public var method: Method
    public var lambda: Double
    /// Candidates fetched before reranking; nil: max(4·top_k, 20).
    public var candidates: Int?

    public init(method: Method, lambda: Double = MMR.defaultLambda, candidates: Int? = nil) {
        self.method = method
        self.lambda = lambda
        self.candidates = candidates
    }

    var canonical: String { "\(method.rawValue):\(lambda):\(candidates ?? 0)" }
}

/// Seconds spent in each stage of a query.
public struct StageTimings: Sendable {
    public var embed: Double = 0
    public var search: Double = 0
    public var rerank: Double = 0
    public var generate: Double = 0
    public var total: Double = 0

    public init(embed: Double = 0, search: Double = 0, rerank: Double = 0, generate: Double = 0, total: Double = 0) {
        self.embed = embed
        self.search = search
        self.rerank = rerank
        self.generate = generate
        self.total = total
    }
}

public struct RetrievalResult: Sendable {
    public var hits: [Hit]
    public var timings: StageTimings
    /// Shards that did not answer (only with `allowPartial`).
    public var missingShards: [Int] = []
    /// Set when the reranker failed and retrieval order was kept.
    public var rerankDegraded: String?
}

public struct IndexSummary: Sendable {
    public var documents = 0
    public var chunks = 0
    public var replaced = 0
    public var unchanged = 0

    public static func += (total: inout IndexSummary, part: IndexSummary) {
        total.documents += part.documents
        total.chunks += part.chunks
        total.replaced += part.replaced
        total.unchanged += part.unchanged
    }

    var wire: Ragd_V1_IndexResponse {
        .with {
            $0.documents = UInt32(documents)
            $0.chunks = UInt32(chunks)
            $0.replaced = UInt32(replaced)
            $0.unchanged = UInt32(unchanged)
        }
    }
}

extension ContinuousClock.Instant {
    /// Seconds from `self` until now.
    var elapsedSeconds: Double {
        (ContinuousClock.now - self).inSeconds
    }
}
