import RagCore

/// The in-memory search structures of one partition: contiguous vectors for an
/// exact SIMD scan, a BM25 inverted index, and each document's metadata (for
/// filters). Chunk texts are kept too unless `keepsTexts` is false: then hits
/// carry no text (the owner reads the final hits' texts from disk) and a
/// removal is told the old texts (to find the postings to drop).
///
/// Not thread-safe: one owner (an actor in the server) serialises access.
/// Deleted chunks leave a free slot that the next insert reuses, so the vector
/// block stays dense without moving rows.
public final class PartitionIndex {
    public let dimension: Int
    public let partition: Int

    struct DocumentEntry {
        var id: String
        var metadata: Metadata
        var contentHash: UInt64
        var slots: [Int32]
    }

    struct Posting { var slot: Int32; var tf: Int32 }

    /// Row-major: slot `s` occupies `vectors[s*dimension ..< (s+1)*dimension]`.
    var vectors: [Float] = []
    internal(set) var slotDocument: [Int32] = []   // -1 = free slot
    internal(set) var slotOrdinal: [Int32] = []
    /// Empty unless `keepsTexts`.
    private var slotText: [String] = []
    var slotLength: [Int32] = []
    var freeSlots: [Int32] = []

    internal(set) var documents: [DocumentEntry?] = []
    var freeDocuments: [Int32] = []
    var documentIndex: [String: Int32] = [:]

    var postings: [String: [Posting]] = [:]
    var totalLength = 0

    public internal(set) var chunkCount = 0
    public var documentCount: Int { documentIndex.count }

    /// int8 codes for a first pass, rescored exactly (nil: exact scan only).
    var quantizer: ScalarQuantizer?

    /// The HNSW graph over this partition's chunks (nil: no graph). Its nodes
    /// are numbered in insertion order; a deleted chunk's node is a tombstone
    /// until the graph is compacted.
    var graph: HNSWGraph?
    var hnsw: HNSWSettings
    /// Per slot, its graph node (-1: none); per graph node, its slot.
    var slotNode: [Int32] = []
    var nodeSlot: [Int32] = []
    /// Chunks waiting to go into the graph (`defersGraphInserts`), by slot:
    /// searched exactly beside the graph until `insertPending` moves them in.
    var pendingVectors: [Int32: [Float]] = [:]
    /// While true, chunks upserted into a graph partition wait in
    /// `pendingVectors` instead of being linked: a start that reloads many
    /// documents written since its image serves at once, and the owner links
    /// them in the background.
    public var defersGraphInserts = false
    /// While a saved graph is adopted: its live nodes by label, not yet matched to a loaded chunk.
    var unclaimedNodes: [NodeLabel: Int32] = [:]
    var adoptedNodes = 0

    /// `int8`: keep int8 codes beside the float vectors, scan those first and
    /// rescore the best candidates exactly (four times less memory read per query).
    public convenience init(dimension: Int, partition: Int, int8: Bool = false) {
        self.init(dimension: dimension, partition: partition, kind: int8 ? .int8 : .flat)
    }

    /// How this partition searches its vectors (an exact index can become a
    /// graph: `beginGraphBuild`).
    public var kind: VectorIndexKind {
        if graph != nil { return .hnsw(hnsw) }
        return quantizer != nil ? .int8 : .flat
    }
    /// False when the owner compacts the graph itself, in the background
    /// (`beginGraphBuild`); true: `remove` compacts when it is worth it.
    public var compactsOnRemove = true
    /// Whether chunk texts stay in memory (see the type's comment).
    public let keepsTexts: Bool
    /// While a graph is built in the background: the slots written since its input was taken.
    var changedSlots: Set<Int32>?

    /// Where a graph that walks int8 codes keeps its float vectors (a float
    /// walk reads every vector it meets, so its vectors stay in memory).
    public let vectorBacking: VectorBacking

    public init(dimension: Int, partition: Int, kind: VectorIndexKind, keepsTexts: Bool = true, vectorBacking: VectorBacking = .memory) {
        self.dimension = dimension
        self.partition = partition
        self.keepsTexts = keepsTexts
        self.vectorBacking = vectorBacking
        switch kind {
        case .flat: hnsw = HNSWSettings()
        case .int8:
            hnsw = HNSWSettings()
            quantizer = ScalarQuantizer(dimension: dimension)
        case .hnsw(let settings):
            hnsw = settings
            graph = HNSWGraph(dimension: dimension, parameters: settings.parameters, backing: backing(for: settings))
        }
    }

    /// Where a graph of `settings` keeps its vectors.
    func backing(for settings: HNSWSettings) -> VectorBacking { settings.quantized ? vectorBacking : .memory }

    public func contentHash(of documentID: String) -> UInt64? {
        documentIndex[documentID].flatMap { documents[Int($0)]?.contentHash }
    }

    public func contains(_ documentID: String) -> Bool { documentIndex[documentID] != nil }

    // MARK: writes

    /// Adds or replaces a document (all its chunks at once). `replacing`: the
    /// replaced version's chunk texts, when this index does not keep them.
    public func upsert(_ doc: PreparedDocument, replacing oldChunks: [String]? = nil) {
        precondition(doc.chunks.count == doc.embeddings.count)
        remove(doc.id, chunks: oldChunks)
        let d: Int32
        if let free = freeDocuments.popLast() { d = free } else { d = Int32(documents.count); documents.append(nil) }
        var slots: [Int32] = []
        slots.reserveCapacity(doc.chunks.count)
        let titleTerms = Self.titleTerms(doc.metadata)
        for (ordinal, (text, vector)) in zip(doc.chunks, doc.embeddings).enumerated() {
            precondition(vector.count == dimension, "embedding dimension mismatch")
            let s = allocateSlot()
            changedSlots?.insert(s)
            let base = Int(s) * dimension
            if graph == nil {
                vectors.withUnsafeMutableBufferPointer { buf in
                    for i in 0..<dimension { buf[base + i] = vector[i] }
                }
            }
            if quantizer != nil {
                quantizer!.grow(toRows: slotDocument.count)
                let fits = vector.withUnsafeBufferPointer { quantizer!.set(row: Int(s), $0) }
                if !fits { vectors.withUnsafeBufferPointer { quantizer!.rebuild($0, rows: slotDocument.count) } }
            }
            if let graph {
                if let node = claimNode(NodeLabel(documentID: doc.id, ordinal: Int32(ordinal), contentHash: doc.contentHash), vector) {
                    slotNode[Int(s)] = node
                    nodeSlot[Int(node)] = s
                } else if defersGraphInserts {
                    pendingVectors[s] = vector
                } else {
                    slotNode[Int(s)] = graph.add(vector)
                    nodeSlot.append(s)
                }
            }
            slotDocument[Int(s)] = d
            slotOrdinal[Int(s)] = Int32(ordinal)
            if keepsTexts { slotText[Int(s)] = text }
            addPostings(of: s, terms: Tokenizer.terms(text) + titleTerms)
            slots.append(s)
            chunkCount += 1
        }
        documents[Int(d)] = DocumentEntry(id: doc.id, metadata: doc.metadata, contentHash: doc.contentHash, slots: slots)
        documentIndex[doc.id] = d
    }

    /// Removes a document and its chunks; returns false if it was not here.
    /// `chunks`: its chunk texts, when this index does not keep them. Without
    /// them (or with the wrong count) every posting list is swept instead: the
    /// same result, at a cost proportional to the whole index.
    @discardableResult
    public func remove(_ documentID: String, chunks: [String]? = nil) -> Bool {
        remove(documentID, chunks: chunks, sweptPostings: false)
    }

    /// `sweptPostings`: the caller has dropped the document's postings already.
    @discardableResult
    func remove(_ documentID: String, chunks: [String]? = nil, sweptPostings: Bool) -> Bool {
        guard let d = documentIndex.removeValue(forKey: documentID), let entry = documents[Int(d)] else { return false }
        let titleTerms = Self.titleTerms(entry.metadata)
        let texts: [String]? = sweptPostings ? nil
            : keepsTexts ? entry.slots.map { slotText[Int($0)] } : chunks.flatMap { $0.count == entry.slots.count ? $0 : nil }
        if texts == nil && !sweptPostings { sweepPostings(Set(entry.slots)) }
        for (ordinal, s) in entry.slots.enumerated() {
            let i = Int(s)
            changedSlots?.insert(s)
            if let texts { dropPostings(of: s, terms: Tokenizer.terms(texts[ordinal]) + titleTerms) }
            totalLength -= Int(slotLength[i])
            slotDocument[i] = -1
            if keepsTexts { slotText[i] = "" }
            slotLength[i] = 0
            if graph == nil {
                vectors.withUnsafeMutableBufferPointer { buf in
                    for j in 0..<dimension { buf[i * dimension + j] = 0 }
                }
            }
            quantizer?.clear(row: i)
            if let graph, slotNode[i] >= 0 {
                graph.remove(slotNode[i])
                slotNode[i] = -1
            }
            pendingVectors[s] = nil
            freeSlots.append(s)
            chunkCount -= 1
        }
        documents[Int(d)] = nil
        freeDocuments.append(d)
        if compactsOnRemove { compactGraphIfWorthIt() }
        return true
    }

    private func allocateSlot() -> Int32 {
        if let s = freeSlots.popLast() { return s }
        let s = Int32(slotDocument.count)
        // With a graph, the graph holds the vectors (one copy, by node).
        if graph == nil { vectors.append(contentsOf: repeatElement(0, count: dimension)) }
        slotDocument.append(-1)
        slotOrdinal.append(0)
        if keepsTexts { slotText.append("") }
        slotLength.append(0)
        if graph != nil { slotNode.append(-1) }
        return s
    }

    // MARK: reads

    /// For each document, whether the filter admits it (nil filter: all).
    func admitted(_ filter: MetadataFilter?) -> [Bool]? {
        guard let filter else { return nil }
        return documents.map { $0.map { filter.matches($0.metadata) } ?? false }
    }

    func key(_ slot: Int32) -> ChunkKey {
        ChunkKey(documentID: documents[Int(slotDocument[Int(slot)])]!.id, ordinal: Int(slotOrdinal[Int(slot)]))
    }

    func hit(_ e: TopK<ChunkKey>.Entry) -> Hit {
        let d = documents[Int(documentIndex[e.key.documentID]!)]!
        let slot = d.slots[e.key.ordinal]
        return Hit(key: e.key, score: e.score, text: keepsTexts ? slotText[Int(slot)] : "", metadata: d.metadata, partition: partition,
                   contentHash: d.contentHash)
    }

    /// Exact inner-product search (cosine for unit vectors), filter applied
    /// before top-k selection. Checks for cancellation every 8,192 rows.
    public func vectorSearch(_ query: [Float], k: Int, filter: MetadataFilter? = nil) throws -> [Hit] {
        precondition(query.count == dimension)
        let allowed = admitted(filter)
        if let graph { return graphSearch(query, k: k, graph: graph, allowed: allowed) }
        if let quantizer, allowed == nil { return try quantizedSearch(query, k: k, quantizer: quantizer) }
        var top = TopK<ChunkKey>(k: k)
        let slotDocument = self.slotDocument  // a local copy keeps class access out of the loop
        let rows = slotDocument.count
        let dim = dimension
        let block = 4096
        var scores = [Float](repeating: 0, count: min(block, max(rows, 1)))
        try vectors.withUnsafeBufferPointer { v in
            try query.withUnsafeBufferPointer { q in
                try scores.withUnsafeMutableBufferPointer { out in
                    guard let vb = v.baseAddress, let qb = q.baseAddress, let ob = out.baseAddress else { return }
                    var start = 0
                    while start < rows {
                        try Task.checkCancellation()
                        let end = min(rows, start + block)
                        if let allowed {
                            for s in start..<end {
                                let d = slotDocument[s]
                                if d < 0 || !allowed[Int(d)] { continue }
                                top.insert(score: Double(VectorMath.dot(vb + s * dim, qb, dim)), key: self.key(Int32(s)))
                            }
                        } else {
                            // One kernel call per block (free slots are scored, then skipped);
                            // most scores fall below the k-th best and cost one compare.
                            VectorMath.dotRows(vb + start * dim, rows: end - start, dim: dim, query: qb, out: ob)
                            var threshold = top.threshold
                            for s in start..<end where Double(ob[s - start]) >= threshold && slotDocument[s] >= 0 {
                                top.insert(score: Double(ob[s - start]), key: self.key(Int32(s)))
                                threshold = top.threshold
                            }
                        }
                        start = end
                    }
                }
            }
        }
        return top.sorted().map(hit)
    }

    /// Candidates to rescore exactly after the int8 pass.
    static func rescoreDepth(k: Int) -> Int { max(4 * k, 40) }

    /// int8 first pass over every row, then the best `rescoreDepth` candidates
    /// scored exactly: results are ranked by exact scores (the same as the
    /// exact scan's whenever the true top k are among the candidates).
    private func quantizedSearch(_ query: [Float], k: Int, quantizer: ScalarQuantizer) throws -> [Hit] {
        let rows = slotDocument.count
        let slotDocument = self.slotDocument
        var candidates = TopK<Int32>(k: Self.rescoreDepth(k: k))
        let q = quantizer.scaled(query)
        let block = 4096
        var scores = [Float](repeating: 0, count: min(block, max(rows, 1)))
        try q.withUnsafeBufferPointer { qb in
            try scores.withUnsafeMutableBufferPointer { out in
                var start = 0
                while start < rows {
                    try Task.checkCancellation()
                    let end = min(rows, start + block)
                    quantizer.scan(start: start, count: end - start, scaledQuery: qb.baseAddress!, out: out.baseAddress!)
                    var threshold = candidates.threshold
                    for s in start..<end where Double(out[s - start]) >= threshold && slotDocument[s] >= 0 {
                        candidates.insert(score: Double(out[s - start]), key: Int32(s))
                        threshold = candidates.threshold
                    }
                    start = end
                }
            }
        }
        var top = TopK<ChunkKey>(k: k)
        vectors.withUnsafeBufferPointer { v in
            query.withUnsafeBufferPointer { qb in
                for c in candidates.sorted() {
                    let s = Int(c.key)
                    top.insert(score: Double(VectorMath.dot(v.baseAddress! + s * dimension, qb.baseAddress!, dimension)), key: self.key(c.key))
                }
            }
        }
        return top.sorted().map(hit)
    }

    var documentIndexKeys: Dictionary<String, Int32>.Keys { documentIndex.keys }

    func storedDocument(_ id: String) -> PreparedDocument? {
        guard keepsTexts, let d = documentIndex[id], let entry = documents[Int(d)] else { return nil }
        let chunks = entry.slots.map { slotText[Int($0)] }
        let embeddings = entry.slots.map { slotVector(Int($0)) }
        return PreparedDocument(id: entry.id, metadata: entry.metadata, contentHash: entry.contentHash, chunks: chunks, embeddings: embeddings)
    }

    /// Adds each hit's stored embedding.
    public func attachVectors(_ hits: [Hit]) -> [Hit] {
        hits.map { h in
            guard let d = documentIndex[h.key.documentID], let entry = documents[Int(d)], h.key.ordinal < entry.slots.count else { return h }
            let s = Int(entry.slots[h.key.ordinal])
            var out = h
            out.vector = slotVector(s)
            return out
        }
    }

    /// Slot `s`'s vector, from the vector block or the graph that holds it.
    func slotVector(_ s: Int) -> [Float] {
        if let graph { return slotNode[s] >= 0 ? graph.vector(slotNode[s]) : pendingVectors[Int32(s)]! }
        return Array(vectors[s * dimension..<(s + 1) * dimension])
    }

    /// Counts of this partition's documents and chunks.
    public var counts: (documents: Int, chunks: Int) { (documentCount, chunkCount) }
}
