import RagCore
import RagEngine

/// What a partition search needs. The coordinator embeds the query once and
/// gathers corpus-wide BM25 statistics first, so every shard scores alike.
public struct ShardSearchRequest: Sendable {
    public var vector: [Float]?
    public var terms: [String]
    public var keywordStats: KeywordStats?
    public var k: Int
    public var filter: MetadataFilter?
    /// Return each hit's stored embedding (for MMR).
    public var includeVectors = false

    public init(vector: [Float]?, terms: [String], keywordStats: KeywordStats?, k: Int, filter: MetadataFilter?, includeVectors: Bool = false) {
        self.includeVectors = includeVectors
        self.vector = vector
        self.terms = terms
        self.keywordStats = keywordStats
        self.k = k
        self.filter = filter
    }
}

public struct ShardSearchResult: Sendable {
    public var vectorHits: [Hit] = []
    public var keywordHits: [Hit] = []
}

public struct ShardCounts: Sendable {
    public var partition: Int
    public var documents: Int
    public var chunks: Int
    /// The partition's vector index (`exact`, `int8`, `hnsw`; "" from a node
    /// that does not say).
    public var index: String = ""
}

/// One partition of a collection, wherever it lives. `LocalShard` is in this
/// process; a remote shard speaks the same operations over the wire.
public protocol Shard: Sendable {
    var partition: Int { get }
    func keywordStats(terms: [String]) async throws -> KeywordStats
    /// Hits carry no text: the coordinator reads the final ones' with `texts`.
    func search(_ request: ShardSearchRequest) async throws -> ShardSearchResult
    /// The texts of these chunks (key → the content hash that was scored),
    /// each only if its document still has that hash: a chunk of a document
    /// replaced or deleted since the search is left out.
    func texts(_ chunks: [ChunkKey: UInt64]) async throws -> [ChunkKey: String]
    /// Applies upserts and deletes atomically; returns the deleted ids that existed.
    func write(upserts: [PreparedDocument], deletes: [String]) async throws -> Set<String>
    /// Stored content hashes of those of `ids` that exist (to skip unchanged documents).
    func contentHashes(_ ids: [String]) async throws -> [String: UInt64]
    func counts() async throws -> ShardCounts
    func close() async
}
