import RagCore

/// The lexical side of a partition: BM25 postings per term (slot and term
/// frequency), each chunk's length in terms, and the title field weight.
extension PartitionIndex {
    /// How many times a document's title terms count in each of its chunks.
    /// Development corpus, MiniLM hybrid nDCG@10 (keyword alone): 0 0.747
    /// (0.673), 1 0.754 (0.678), 2 0.753 (0.680), 3 0.755 (0.682).
    public static let titleWeight = 2

    /// The terms every chunk of a document gets besides its text's: its title's
    /// (the `title` metadata) `titleWeight` times, a field weight in the manner
    /// of BM25F, so every chunk of a document matches its title. Computed once
    /// per document, not per chunk.
    static func titleTerms(_ metadata: Metadata) -> [String] {
        guard case .string(let title)? = metadata["title"] else { return [] }
        let t = Tokenizer.terms(title)
        return (0..<titleWeight).flatMap { _ in t }
    }

    /// Indexes chunk `s` under `terms` (its text's and its document's title terms).
    func addPostings(of s: Int32, terms: [String]) {
        slotLength[Int(s)] = Int32(terms.count)
        totalLength += terms.count
        var tf: [String: Int32] = [:]
        tf.reserveCapacity(terms.count)
        for t in terms { tf[t, default: 0] += 1 }
        for (t, n) in tf { postings[t, default: []].append(Posting(slot: s, tf: n)) }
    }

    func dropPostings(of s: Int32, terms: [String]) {
        var seen = Set<String>()
        for t in terms where seen.insert(t).inserted {
            // In place: copying the list out and back would copy all of it (copy-on-write).
            if let at = postings[t]?.firstIndex(where: { $0.slot == s }) {
                postings[t]!.swapAt(at, postings[t]!.count - 1)
                postings[t]!.removeLast()
                if postings[t]!.isEmpty { postings[t] = nil }
            }
        }
    }

    /// Drops every posting of `slots` (when their terms are not known).
    func sweepPostings(_ slots: Set<Int32>) {
        for t in Array(postings.keys) {
            postings[t]!.removeAll { slots.contains($0.slot) }
            if postings[t]!.isEmpty { postings[t] = nil }
        }
    }

    /// This partition's share of the corpus statistics for `terms`.
    public func keywordStats(_ terms: [String]) -> KeywordStats {
        var df: [String: Int] = [:]
        for t in Set(terms) { df[t] = postings[t]?.count ?? 0 }
        return KeywordStats(chunkCount: chunkCount, totalLength: totalLength, documentFrequency: df)
    }

    /// BM25 over `terms` (distinct terms, each counted once) with corpus-wide `stats`.
    public func keywordSearch(_ terms: [String], stats: KeywordStats, k: Int, filter: MetadataFilter? = nil) throws -> [Hit] {
        let allowed = admitted(filter)
        let avg = stats.chunkCount > 0 ? Double(stats.totalLength) / Double(stats.chunkCount) : 0
        // Dense accumulators (one per slot) and the list of slots touched: far
        // cheaper than a dictionary when query terms are common.
        var scores = [Double](repeating: 0, count: slotDocument.count)
        var touched: [Int32] = []
        // Fixed term order: the same float additions in the same order on every layout.
        for t in Set(terms).sorted() {
            guard let list = postings[t] else { continue }
            try Task.checkCancellation()
            let idf = BM25.idf(documentFrequency: stats.documentFrequency[t] ?? list.count, count: max(stats.chunkCount, 1))
            for p in list {
                let s = Int(p.slot)
                if let allowed, !allowed[Int(slotDocument[s])] { continue }
                if scores[s] == 0 { touched.append(p.slot) }  // every term score is > 0 (idf > 0, tf >= 1)
                scores[s] += BM25.termScore(tf: Int(p.tf), length: Int(slotLength[s]), averageLength: avg, idf: idf)
            }
        }
        var top = TopK<ChunkKey>(k: k)
        for s in touched { top.insert(score: scores[Int(s)], key: self.key(s)) }
        return top.sorted().map(hit)
    }
}
