import RagCore
import RagEngine
import Synchronization
import Tracing

/// Runs queries and writes over a collection's shards: embeds once, gathers
/// global BM25 statistics, fans out to every shard in parallel and merges the
/// per-shard top-k exactly (score desc, then document id, then chunk ordinal).
public final class Coordinator: Sendable {
    public let configuration: RagServerConfiguration
    public let registry: CollectionRegistry
    public let embedder: any Embedder
    public let generator: any Generator
    public let embeddingCache: EmbeddingCache
    /// Texts of recently answered chunks (partitions keep them on disk).
    public let textCache: ChunkTextCache
    /// The cross-encoder for `rerank: cross-encoder`, if configured.
    public let reranker: (any Reranker)?
    let metrics: RagMetrics?
    /// Embedding work for indexing and for queries, bounded separately.
    public let indexEmbedding: WorkLane
    public let queryEmbedding: WorkLane
    let queryCache: QueryCache?
    /// Orders writes against reindex builds (see `WriteGates`).
    let gates = WriteGates()
    /// Writes that failed while a reindex build was mirrored (see `commit`).
    let mirrorFailures = Atomic<Int>(0)
    /// Extra chunking profiles of a collection (from experiments): each keeps its own index.
    let chunkingProfiles: @Sendable (String) -> [(name: String, size: Int, overlap: Int)]

    public init(configuration: RagServerConfiguration, registry: CollectionRegistry, embedder: any Embedder, generator: any Generator,
                metrics: RagMetrics? = nil, queryCache: QueryCache? = nil, reranker: (any Reranker)? = nil,
                chunkingProfiles: @escaping @Sendable (String) -> [(name: String, size: Int, overlap: Int)] = { _ in [] }) {
        self.chunkingProfiles = chunkingProfiles
        self.reranker = reranker
        self.configuration = configuration
        self.registry = registry
        self.embedder = embedder
        self.generator = generator
        self.metrics = metrics
        self.queryCache = queryCache
        embeddingCache = EmbeddingCache()
        textCache = ChunkTextCache(capacityBytes: configuration.textCacheBytes)
        indexEmbedding = WorkLane(name: "embed-index", workers: configuration.indexEmbedWorkers)
        queryEmbedding = WorkLane(name: "embed-query", workers: configuration.queryEmbedWorkers)
    }

    /// Everything besides the request that decides an answer (part of cache keys).
    public var configurationID: String {
        "\(embedder.id)|\(generator.id)|\(fusionName)|depth3k\(Self.minimumFusionDepth)|title\(PartitionIndex.titleWeight)"
    }

    /// Hybrid fusion of the vector and keyword lists. A dense embedder's list is
    /// fused with BM25's by score, as equals (`Fusion.distributionBased`). A
    /// lexical embedder's "vectors" repeat what BM25 knows and only add noise
    /// when fused as equals (development corpus, hashing embedder: hybrid
    /// nDCG@10 0.617 against keyword 0.673), so its list only breaks exact ties
    /// and fills the answer up to k after every keyword hit.
    func fuse(vector: [Hit], keyword: [Hit], limit: Int) -> [Hit] {
        embedder.isLexical
            ? Fusion.reciprocalRank([vector, keyword], weights: [Fusion.fillInWeight, 1], limit: limit)
            : Fusion.distributionBased([vector, keyword], limit: limit)
    }

    /// How `fuse` combines lists (traces and cache keys).
    var fusionName: String { embedder.isLexical ? "rrf k=\(Int(Fusion.defaultK)) keyword first" : "dbsf 1:1" }

    /// The embedder's id and how it runs, e.g. "minilm-l6-v2-384 (int8 avx512-vnni)".
    public var embedderDescription: String {
        (embedder as? MiniLMEmbedder).map { "\(embedder.id) (\($0.kernel))" } ?? embedder.id
    }

    /// True when letter case in a question cannot change its answer: the embedder
    /// folds case and the extractive generator matches lower-cased terms. (A chat
    /// model sees the question as typed.) Decides whether cache keys fold case.
    public var ignoresQueryCase: Bool {
        !embedder.isCaseSensitive && generator is ExtractiveGenerator
    }

    /// Candidates fetched from each list before hybrid fusion: deep enough that
    /// fusion sees what either list ranks well, bounded so cost stays flat.
    static func fusionDepth(k: Int) -> Int { min(1000, max(minimumFusionDepth, 3 * k)) }
    static let minimumFusionDepth = 100

    public func validate(_ q: QueryOptions) throws(RagError) -> QueryOptions {
        var q = q
        try CollectionRegistry.validateName(q.collection)
        guard !q.query.allSatisfy(\.isWhitespace) else { throw .invalidArgument("query must not be empty") }
        guard q.query.utf8.count <= 32 * 1024 else { throw .invalidArgument("query is longer than 32 KiB") }
        let k = q.topK ?? configuration.defaultTopK
        guard (1...configuration.maxTopK).contains(k) else {
            throw .invalidArgument("top_k must be between 1 and \(configuration.maxTopK), got \(k)")
        }
        q.topK = k
        if let r = q.rerank {
            guard (0...1).contains(r.lambda) else { throw .invalidArgument("rerank lambda must be between 0 and 1, got \(r.lambda)") }
            if let c = r.candidates, !(k...configuration.maxTopK).contains(c) {
                throw .invalidArgument("rerank candidates must be between top_k (\(k)) and \(configuration.maxTopK), got \(c)")
            }
        }
        return q
    }

    func checkEmbedder(_ handle: CollectionHandle) throws(RagError) {
        guard handle.info.embedder == embedder.id, handle.info.dimension == embedder.dimension else {
            throw .failedPrecondition(
                "collection \(handle.info.name) was built with embedder \(handle.info.embedder) (\(handle.info.dimension) dimensions) "
                    + "but this server uses \(embedder.id) (\(embedder.dimension)); re-index it into a new collection or start the server with "
                    + Self.embedderFlag(for: handle.info.embedder))
        }
    }

    /// How to start a server with the embedder that built a collection.
    static func embedderFlag(for id: String) -> String {
        if id.hasPrefix("hashing") { return "--embedder hashing" }
        if id.hasPrefix("minilm") { return "--embedder minilm" }
        return "the embedder that built it (\(id))"
    }

    /// Retrieval alone: the merged top-k hits and stage timings.
    public func retrieve(_ query: QueryOptions) async throws -> RetrievalResult {
        try await RemoteShard.$pin.withValue(Int.random(in: 0..<1 << 30)) { try await retrievePinned(query) }
    }

    func retrievePinned(_ query: QueryOptions) async throws -> RetrievalResult {
        let q = try validate(query)
        let start = ContinuousClock.now
        var timings = StageTimings()
        let handle = try await registry.get(q.collection)
        try checkEmbedder(handle)

        var vector: [Float]?
        if q.mode != .keyword {
            vector = try await withSpan("embed") { span in
                span.attributes["ragd.embedder"] = embedder.id
                return try await embeddingCache.embed(q.query, with: embedder, in: queryEmbedding)
            }
        }
        timings.embed = start.elapsedSeconds
        let searchStart = ContinuousClock.now
        let terms = Tokenizer.terms(q.query)
        var shards = handle.shards
        var missing: [Int] = []
        var stats: KeywordStats?
        if q.mode != .vector, !terms.isEmpty {
            try await withSpan("keyword statistics") { _ in
                if q.allowPartial {
                    let (parts, failed) = await fanOutPartial(shards) { try await $0.keywordStats(terms: terms) }
                    missing = failed
                    shards = shards.filter { !failed.contains($0.partition) }
                    stats = parts.reduce(into: KeywordStats()) { $0.add($1) }
                } else {
                    stats = try await gatherStats(shards, terms: terms)
                }
            }
        }
        let k = q.topK!
        // With a reranker, fetch a deeper candidate list and let it choose k.
        let fetch = q.rerank.map { min(configuration.maxTopK, max(k, $0.candidates ?? max(4 * k, 20))) } ?? k
        let depth = q.mode == .hybrid ? Self.fusionDepth(k: fetch) : fetch
        let request = ShardSearchRequest(vector: vector, terms: terms, keywordStats: stats, k: depth, filter: q.filter,
                                         includeVectors: q.rerank?.method == .mmr)
        var hits: [Hit] = []
        let statsMissing = missing
        // Texts are read after the search: a document replaced in between is
        // searched again (its hit was scored on the old version), then left out.
        for attempt in 1...Self.textAttempts {
            let found = try await searchAndFuse(request, mode: q.mode, shards: shards, allowPartial: q.allowPartial, fetch: fetch)
            let read = try await attachTexts(found.hits, shards: shards, allowPartial: q.allowPartial)
            hits = read.hits
            missing = Array(Set(statsMissing + found.missing + read.missing)).sorted()
            if read.changed == 0 || attempt == Self.textAttempts { break }
        }
        timings.search = searchStart.elapsedSeconds
        var rerankDegraded: String?
        if let r = q.rerank {
            let t = ContinuousClock.now
            let span = startSpan("rerank")
            span.attributes["ragd.rerank"] = "\(r.method)"
            defer { span.end() }
            switch r.method {
            case .mmr where hits.allSatisfy({ $0.vector != nil }):
                hits = MMR.rerank(hits, vectors: hits.map { $0.vector! }, lambda: r.lambda, k: k)
            case .crossEncoder:
                guard let reranker else { throw RagError.failedPrecondition("no cross-encoder is configured on this server (--reranker-url)") }
                do { hits = try await reranker.rerank(query: q.query, hits: hits, k: k) } catch {
                    // Retrieval order is still a fine answer: degrade (unless strict).
                    if q.strict || Task.isCancelled { throw error }
                    rerankDegraded = "reranker \(reranker.id) failed: \(RagError(from: error).message)"
                }
            default: break
            }
            timings.rerank = t.elapsedSeconds
        }
        hits = hits.prefix(k).map { h in var h = h; h.vector = nil; return h }
        timings.total = start.elapsedSeconds
        return RetrievalResult(hits: hits, timings: timings, missingShards: missing, rerankDegraded: rerankDegraded)
    }

    /// The shards' hits for `request`, merged (and fused in hybrid mode) to `fetch`, without texts.
    func searchAndFuse(_ request: ShardSearchRequest, mode: SearchMode, shards: [any Shard], allowPartial: Bool,
                       fetch: Int) async throws -> (hits: [Hit], missing: [Int]) {
        let metrics = self.metrics
        let search: @Sendable (any Shard) async throws -> ShardSearchResult = { shard in
            try await withSpan("search partition \(shard.partition)") { span in
                span.attributes["ragd.partition"] = shard.partition
                let t = ContinuousClock.now
                let r = try await shard.search(request)
                metrics?.partitionSearch(partition: shard.partition, seconds: t.elapsedSeconds)
                span.attributes["ragd.hits"] = r.vectorHits.count + r.keywordHits.count
                return r
            }
        }
        let results: [ShardSearchResult]
        var missing: [Int] = []
        if allowPartial {
            (results, missing) = await fanOutPartial(shards, search)
        } else {
            results = try await fanOut(shards, search)
        }
        let vectorTop = HitMerge.topK(results.map(\.vectorHits), k: request.k)
        let keywordTop = HitMerge.topK(results.map(\.keywordHits), k: request.k)
        switch mode {
        case .vector: return (Array(vectorTop.prefix(fetch)), missing)
        case .keyword: return (Array(keywordTop.prefix(fetch)), missing)
        case .hybrid:
            let fused = withSpan("fuse") { span in
                span.attributes["ragd.fusion"] = fusionName
                return fuse(vector: vectorTop, keyword: keywordTop, limit: fetch)
            }
            return (fused, missing)
        }
    }

    /// Local partitions holding at most this many chunks in all are searched
    /// (and asked for statistics) one after another on the calling task: at
    /// 400 chunks a partition's search takes ~10 µs, less than the wake-ups of
    /// the child tasks that would run them side by side.
    static let inlineSearchChunks = 8_192

    static func runsInLine(_ shards: [any Shard]) -> Bool {
        var chunks = 0
        for shard in shards {
            guard let local = shard as? LocalShard else { return false }
            chunks += local.chunkCount
            if chunks > inlineSearchChunks { return false }
        }
        return true
    }

    /// Sums every shard's statistics for `terms` (DFS query-then-fetch).
    func gatherStats(_ shards: [any Shard], terms: [String]) async throws -> KeywordStats {
        var total = KeywordStats()
        for s in try await fanOut(shards, { try await $0.keywordStats(terms: terms) }) { total.add(s) }
        return total
    }

    /// Runs `body` on every shard in parallel (in line when `runsInLine`);
    /// results in shard order. The first failure cancels the rest.
    func fanOut<T: Sendable>(_ shards: [any Shard], _ body: @escaping @Sendable (any Shard) async throws -> T) async throws -> [T] {
        if Self.runsInLine(shards) {
            var out: [T] = []
            for shard in shards { out.append(try await body(shard)) }
            return out
        }
        return try await withThrowingTaskGroup(of: (Int, T).self) { group in
            for (i, shard) in shards.enumerated() {
                group.addTask { (i, try await body(shard)) }
            }
            var out = [T?](repeating: nil, count: shards.count)
            for try await (i, value) in group { out[i] = value }
            return out.map { $0! }
        }
    }

    /// Like `fanOut`, but a failing shard is left out (and reported) instead of
    /// failing the call. Cancellation and deadline still end the whole call.
    func fanOutPartial<T: Sendable>(_ shards: [any Shard], _ body: @escaping @Sendable (any Shard) async throws -> T) async -> ([T], [Int]) {
        if Self.runsInLine(shards) {
            var ok: [T] = []
            var failed: [Int] = []
            for shard in shards {
                if let value = try? await body(shard) { ok.append(value) } else { failed.append(shard.partition) }
            }
            return (ok, failed)
        }
        return await withTaskGroup(of: (Int, T?).self) { group in
            for shard in shards {
                group.addTask { (shard.partition, try? await body(shard)) }
            }
            var ok: [(Int, T)] = []
            var failed: [Int] = []
            for await (p, value) in group {
                if let value { ok.append((p, value)) } else { failed.append(p) }
            }
            return (ok.sorted { $0.0 < $1.0 }.map(\.1), failed.sorted())
        }
    }

    /// The sources handed to the generator.
    static func generationSources(_ hits: [Hit]) -> [GenerationSource] {
        hits.map { GenerationSource(text: $0.text, documentID: $0.key.documentID) }
    }
}
