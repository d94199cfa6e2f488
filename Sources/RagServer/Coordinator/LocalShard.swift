import RagCore
import RagEngine
import RagStore
import Synchronization

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
    /// While this partition receives a copy (a move): the session, and every
    /// document id written through the cluster since it began.
    nonisolated let receiving = Mutex<(session: String, touched: Set<String>)?>(nil)

    /// Opens (or creates) the partition file and loads its vectors into memory.
    /// `int8`: an int8 first pass with exact rescoring (`--vector-index int8`).
    public init(path: String, partition: Int, dimension: Int, synchronous: PartitionStore.Synchronous, int8: Bool = false) throws(RagError) {
        self.partition = partition
        self.dimension = dimension
        store = try PartitionStore(path: path, synchronous: synchronous)
        let index = PartitionIndex(dimension: dimension, partition: partition, int8: int8)
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
        receiving.withLock { r in
            guard r != nil else { return }
            for d in upserts { r!.touched.insert(d.id) }
            for id in deletes { r!.touched.insert(id) }
        }
        return try apply(upserts: upserts, deletes: deletes)
    }

    private func apply(upserts: [PreparedDocument], deletes: [String]) throws -> Set<String> {
        let deleted = try store.write(upserts: upserts, deletes: deletes)
        for id in deletes { index.remove(id) }
        for doc in upserts { index.upsert(doc) }
        return deleted
    }

    /// Applies copies from a move's source, except documents written through
    /// the cluster since the session began (those are newer than any copy).
    /// `deletes`: ids the source no longer has. Atomic with `write`: both run
    /// on this actor without suspending.
    public func receive(session: String, upserts: [PreparedDocument], deletes: [String]) throws -> (applied: Int, skipped: Int) {
        guard let touched = receiving.withLock({ $0?.session == session ? $0!.touched : nil }) else {
            throw RagError(.aborted, "receive session \(session) is not open on this node")
        }
        let ups = upserts.filter { !touched.contains($0.id) }
        let dels = deletes.filter { !touched.contains($0) }
        for d in ups where d.chunks.count != d.embeddings.count || d.embeddings.contains(where: { $0.count != dimension }) {
            throw RagError.invalidArgument("copied document \(d.id.truncatedUTF8(maxBytes: 64).debugDescription) does not fit this partition")
        }
        _ = try apply(upserts: ups, deletes: dels)
        return (ups.count + dels.count, upserts.count + deletes.count - ups.count - dels.count)
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
