import RagCore
import RagEngine

extension Coordinator {
    /// Chunks, embeds and stores documents. Each partition's share commits in
    /// one transaction; unchanged documents (same content hash) are skipped.
    public func index(collection: String, documents: [RagDocument], chunkSize: Int, chunkOverlap: Int) async throws -> IndexSummary {
        let summary = try await indexOne(collection: collection, documents: documents, chunkSize: chunkSize, chunkOverlap: chunkOverlap)
        // The same documents under each chunking profile an experiment defined.
        for profile in chunkingProfiles(collection) {
            _ = try await indexOne(collection: ExperimentManager.variantCollection(collection, profile: profile.name), documents: documents,
                                   chunkSize: profile.size, chunkOverlap: profile.overlap)
        }
        return summary
    }

    /// One batch of a longer run (IndexStream, an index job): a failure names the
    /// batch's documents and how many before them are committed.
    func indexBatch(collection: String, documents: [RagDocument], chunkSize: Int, chunkOverlap: Int, committedBefore: Int) async throws -> IndexSummary {
        do {
            return try await index(collection: collection, documents: documents, chunkSize: chunkSize, chunkOverlap: chunkOverlap)
        } catch where !(error is CancellationError) {
            throw RagError.batchFailed(error, documentIDs: documents.map(\.id), committedBefore: committedBefore)
        }
    }

    func indexOne(collection: String, documents: [RagDocument], chunkSize: Int, chunkOverlap: Int) async throws -> IndexSummary {
        try CollectionRegistry.validateName(collection)
        guard !documents.isEmpty else { throw RagError.invalidArgument("index request has no documents") }
        guard documents.count <= configuration.maxDocumentsPerCall else {
            throw RagError(.resourceExhausted, "\(documents.count) documents in one call; the limit is \(configuration.maxDocumentsPerCall): send batches")
        }
        let chunker = try Chunker(size: chunkSize == 0 ? Chunker.defaultSize : chunkSize,
                                  overlap: chunkSize == 0 && chunkOverlap == 0 ? Chunker.defaultOverlap : chunkOverlap)
        var seen = Set<String>()
        for d in documents {
            guard !d.id.isEmpty else { throw RagError.invalidArgument("a document has an empty id") }
            guard d.id.utf8.count <= 512 else { throw RagError.invalidArgument("document id \(d.id.prefix(40).debugDescription)… is longer than 512 bytes") }
            guard seen.insert(d.id).inserted else { throw RagError.invalidArgument("document id \(d.id.debugDescription) appears twice in one request") }
            guard !d.text.allSatisfy(\.isWhitespace) else { throw RagError.invalidArgument("document \(d.id.debugDescription) has no text") }
        }
        let handle = try await registry.getOrCreate(collection, embedder: embedder)
        try checkEmbedder(handle)
        let partitions = handle.info.partitions
        var groups = [[RagDocument]](repeating: [], count: partitions)
        for d in documents {
            groups[StableHash.partition(collection: collection, documentID: d.id, count: partitions)].append(d)
        }
        let embedder = self.embedder
        let batch = configuration.embedBatchSize
        let lane = indexEmbedding
        let parts = try await withThrowingTaskGroup(of: IndexSummary.self) { group in
            for (p, docs) in groups.enumerated() where !docs.isEmpty {
                let shard = handle.shards[p]
                group.addTask {
                    var summary = IndexSummary()
                    let existing = try await shard.contentHashes(docs.map(\.id))
                    var prepared: [PreparedDocument] = []
                    var pendingTexts: [String] = []
                    for d in docs {
                        let hash = Self.contentHash(d, chunker: chunker, embedder: embedder.id)
                        if let old = existing[d.id] {
                            if old == hash { summary.unchanged += 1; continue }
                            summary.replaced += 1
                        }
                        let chunks = chunker.chunks(d.text)
                        prepared.append(PreparedDocument(id: d.id, metadata: d.metadata, contentHash: hash, chunks: chunks, embeddings: []))
                        pendingTexts.append(contentsOf: chunks)
                    }
                    var vectors: [[Float]] = []
                    vectors.reserveCapacity(pendingTexts.count)
                    for start in stride(from: 0, to: pendingTexts.count, by: batch) {
                        try Task.checkCancellation()
                        let texts = Array(pendingTexts[start..<min(start + batch, pendingTexts.count)])
                        vectors += try await lane.run { try await embedder.embed(texts) }
                    }
                    var offset = 0
                    for i in prepared.indices {
                        let n = prepared[i].chunks.count
                        prepared[i].embeddings = Array(vectors[offset..<offset + n])
                        offset += n
                    }
                    try Task.checkCancellation()
                    if !prepared.isEmpty { _ = try await shard.write(upserts: prepared, deletes: []) }
                    summary.documents = prepared.count
                    summary.chunks = offset
                    return summary
                }
            }
            var total = IndexSummary()
            for try await s in group { total += s }
            return total
        }
        if parts.documents > 0 { try await recordWrite(collection) }
        metrics?.indexed(documents: parts.documents)
        return parts
    }

    /// Deletes documents by id; returns the ids that did not exist.
    public func delete(collection: String, documentIDs: [String]) async throws -> (deleted: Int, notFound: [String]) {
        let result = try await deleteOne(collection: collection, documentIDs: documentIDs)
        for profile in chunkingProfiles(collection) {
            let variant = ExperimentManager.variantCollection(collection, profile: profile.name)
            if (try? await registry.get(variant)) != nil { _ = try await deleteOne(collection: variant, documentIDs: documentIDs) }
        }
        return result
    }

    func deleteOne(collection: String, documentIDs: [String]) async throws -> (deleted: Int, notFound: [String]) {
        guard !documentIDs.isEmpty else { throw RagError.invalidArgument("delete request has no document ids") }
        let handle = try await registry.get(collection)
        let partitions = handle.info.partitions
        var groups = [[String]](repeating: [], count: partitions)
        for id in Set(documentIDs) {
            groups[StableHash.partition(collection: collection, documentID: id, count: partitions)].append(id)
        }
        let byPartition = groups
        let deleted = try await fanOut(handle.shards) { shard in
            let ids = byPartition[shard.partition]
            return ids.isEmpty ? [] : try await shard.write(upserts: [], deletes: ids)
        }.reduce(into: Set<String>()) { $0.formUnion($1) }
        if !deleted.isEmpty { try await recordWrite(collection) }
        let notFound = documentIDs.filter { !deleted.contains($0) }
        return (deleted.count, Array(Set(notFound)).sorted())
    }

    /// Bumps the collection's generation (catalog and shared cache) so no cached
    /// answer computed before this write is served after it. (Chunk gauges are
    /// refreshed when /metrics is scraped, not on every write.)
    func recordWrite(_ collection: String) async throws {
        try await registry.bumpGeneration(collection)
        await queryCache?.bumpGeneration(collection)
    }

    /// Identifies a document's indexed form: text, metadata, chunking and embedder.
    static func contentHash(_ d: RagDocument, chunker: Chunker, embedder: String) -> UInt64 {
        var h = StableHash.fnv1a(d.text)
        let meta = d.metadata.keys.sorted().map { "\($0)=\(d.metadata[$0]!.canonicalForHash)" }.joined(separator: "\u{1F}")
        h = StableHash.fnv1a("\u{1E}\(meta)\u{1E}\(chunker.size)/\(chunker.overlap)\u{1E}\(embedder)", seed: h)
        return h
    }
}

extension MetadataValue {
    var canonicalForHash: String {
        switch self {
        case .string(let s): return "s:" + s
        case .number(let n): return "n:\(n)"
        case .bool(let b): return "b:\(b)"
        }
    }
}
