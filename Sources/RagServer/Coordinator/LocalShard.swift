import RagCore
import RagEngine
import RagStore

/// A partition in this process: its SQLite file and its in-memory index.
///
/// An actor, so a write (SQLite commit, then the in-memory swap) is never
/// interleaved with a search: a query sees a document's old chunks or its new
/// ones, never both or neither. The write is synchronous inside the actor on
/// purpose: no suspension point between commit and swap.
public actor LocalShard: Shard {
    public nonisolated let partition: Int
    public nonisolated let dimension: Int
    let store: PartitionStore
    let index: PartitionIndex

    /// Opens (or creates) the partition file and loads its vectors into memory.
    public init(path: String, partition: Int, dimension: Int, synchronous: PartitionStore.Synchronous) throws(RagError) {
        self.partition = partition
        self.dimension = dimension
        store = try PartitionStore(path: path, synchronous: synchronous)
        let index = PartitionIndex(dimension: dimension, partition: partition)
        try store.loadAll { doc in
            guard doc.embeddings.allSatisfy({ $0.count == dimension }) else {
                throw RagError(.failedPrecondition, "\(path): stored vectors do not have dimension \(dimension)")
            }
            index.upsert(doc)
        }
        self.index = index
    }

    public func keywordStats(terms: [String]) throws -> KeywordStats {
        index.keywordStats(terms)
    }

    public func search(_ request: ShardSearchRequest) throws -> ShardSearchResult {
        var result = ShardSearchResult()
        if let v = request.vector {
            result.vectorHits = try index.vectorSearch(v, k: request.k, filter: request.filter)
        }
        if let stats = request.keywordStats {
            result.keywordHits = try index.keywordSearch(request.terms, stats: stats, k: request.k, filter: request.filter)
        }
        if request.includeVectors {
            result.vectorHits = index.attachVectors(result.vectorHits)
            result.keywordHits = index.attachVectors(result.keywordHits)
        }
        return result
    }

    public func write(upserts: [PreparedDocument], deletes: [String]) throws -> Set<String> {
        // Checked before anything is stored: a write that does not fit this
        // partition is an error for its sender, never a crash after the commit.
        for d in upserts {
            guard d.chunks.count == d.embeddings.count else {
                throw RagError.invalidArgument("document \(d.id.truncatedUTF8(maxBytes: 64).debugDescription) has \(d.chunks.count) chunks but \(d.embeddings.count) embeddings")
            }
            for v in d.embeddings {
                guard v.count == dimension else {
                    throw RagError.failedPrecondition("an embedding has \(v.count) dimensions; this partition stores \(dimension)")
                }
                guard v.allSatisfy(\.isFinite) else { throw RagError.invalidArgument("an embedding holds a value that is not finite") }
            }
        }
        let deleted = try store.write(upserts: upserts, deletes: deletes)
        for id in deletes { index.remove(id) }
        for doc in upserts { index.upsert(doc) }
        return deleted
    }

    public func contentHashes(_ ids: [String]) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for id in ids { if let h = index.contentHash(of: id) { out[id] = h } }
        return out
    }

    public func counts() -> ShardCounts {
        ShardCounts(partition: partition, documents: index.documentCount, chunks: index.chunkCount)
    }

    public func documentIDs() -> [String] { index.documentIDs }

    public func stored(_ ids: [String]) -> [PreparedDocument] { ids.compactMap { index.stored($0) } }

    public func close() {
        try? store.close()
    }
}
