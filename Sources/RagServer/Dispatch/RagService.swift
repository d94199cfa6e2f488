import Foundation
import RagCore
import RagEngine
import RagWire
import Tracing

/// The public RPCs: decode the request, call the coordinator, encode the reply.
/// Proto <-> domain conversion happens here and nowhere deeper.
public struct RagService: Sendable {
    public static let version = "0.1.0"

    let coordinator: Coordinator
    let stats: ServerStats
    let role: String
    let cache: QueryCache?
    let metrics: RagMetrics?
    let cluster: Cluster?
    let experiments: ExperimentManager?
    let jobs: JobRunner?
    let authorizer: Authorizer?
    let controlPlane: EtcdClient?
    let rebalancer: Rebalancer?
    /// Snapshots of collections (single servers).
    let snapshots: SnapshotManager?

    public init(coordinator: Coordinator, stats: ServerStats, cache: QueryCache? = nil, metrics: RagMetrics? = nil, role: String = "all",
                cluster: Cluster? = nil, rebalancer: Rebalancer? = nil, experiments: ExperimentManager? = nil, jobs: JobRunner? = nil, authorizer: Authorizer? = nil,
                controlPlane: EtcdClient? = nil, snapshots: SnapshotManager? = nil) {
        self.snapshots = snapshots
        self.authorizer = authorizer
        self.controlPlane = controlPlane
        self.rebalancer = rebalancer
        self.jobs = jobs
        self.cluster = cluster
        self.experiments = experiments
        self.coordinator = coordinator
        self.stats = stats
        self.cache = cache
        self.metrics = metrics
        self.role = role
    }

    public var handlers: [String: RPCHandler] {
        [
            RagMethod.query.rawValue: .unary { try await query($0, $1) },
            RagMethod.stream.rawValue: .stream { try await stream($0, $1, $2) },
            RagMethod.index.rawValue: .unary { try await index($0, $1) },
            RagMethod.indexStream.rawValue: .stream { try await indexStream($0, $1, $2) },
            RagMethod.delete.rawValue: .unary { try await delete($0, $1) },
            RagMethod.stats.rawValue: .unary { try await statsCall($0, $1) },
            RagMethod.health.rawValue: .unary { try await health($0, $1) },
            RagMethod.listCollections.rawValue: .unary { try await listCollections($0, $1) },
            RagMethod.clearCache.rawValue: .unary { try await clearCache($0, $1) },
            RagMethod.createExperiment.rawValue: .unary { p, ctx in try await createExperiment(p, ctx) },
            RagMethod.listExperiments.rawValue: .unary { p, _ in try listExperiments(p) },
            RagMethod.stopExperiment.rawValue: .unary { p, _ in try await stopExperiment(p) },
            RagMethod.experimentReport.rawValue: .unary { p, _ in try experimentReport(p) },
            RagMethod.feedback.rawValue: .unary { try feedback($0, $1) },
            RagMethod.submitJob.rawValue: .unary { try await submitJob($0, $1) },
            RagMethod.getJob.rawValue: .unary { try await getJob($0, $1) },
            RagMethod.listJobs.rawValue: .unary { try await listJobs($0, $1) },
            RagMethod.cancelJob.rawValue: .unary { try await cancelJob($0, $1) },
        ].merging(keyHandlers) { a, _ in a }.merging(clusterHandlers) { a, _ in a }.merging(snapshotHandlers) { a, _ in a }
    }

    static func rerank(_ w: Ragd_V1_Rerank) throws(RagError) -> RerankOptions? {
        switch w.method.lowercased() {
        case "", "none": return nil
        case "mmr": return RerankOptions(method: .mmr, lambda: w.lambda == 0 ? MMR.defaultLambda : w.lambda,
                                         candidates: w.candidates == 0 ? nil : Int(w.candidates))
        case "cross-encoder": return RerankOptions(method: .crossEncoder, candidates: w.candidates == 0 ? nil : Int(w.candidates))
        default: throw .invalidArgument("unknown rerank method \(w.method.debugDescription); known: none, mmr, cross-encoder")
        }
    }

    func options(_ r: Ragd_V1_QueryRequest) throws(RagError) -> QueryOptions {
        var q = QueryOptions(
            collection: r.collection, query: r.query, topK: r.topKValue != nil ? Int(r.topK) : nil,
            filter: r.hasFilter ? try MetadataFilter(wire: r.filter) : nil,
            mode: SearchMode(wire: r.mode), userID: r.userID, noCache: r.noCache, allowPartial: r.allowPartial)
        q.rerank = try Self.rerank(r.rerank)
        q.strict = r.strict
        if let f = q.filter { try coordinator.configuration.requests.check(f) }
        return q
    }

    static func source(_ h: Hit) -> Ragd_V1_Source {
        var s = Ragd_V1_Source()
        s.documentID = h.key.documentID
        s.chunkID = h.key.description
        s.content = h.text
        s.score = h.score
        s.metadata = wireMetadata(h.metadata)
        s.partition = UInt32(h.partition)
        return s
    }

    static func wire(_ t: StageTimings) -> Ragd_V1_Timings {
        var w = Ragd_V1_Timings()
        w.embedSeconds = t.embed
        w.searchSeconds = t.search
        w.rerankSeconds = t.rerank
        w.generateSeconds = t.generate
        w.totalSeconds = t.total
        return w
    }

    /// Records the outcome of a query-like call in the statistics and metrics.
    func recorded<T>(_ body: () async throws -> (T, StageTimings, Int)) async throws -> T {
        do {
            let (value, timings, results) = try await body()
            stats.recordQuery(ok: true, timings: timings)
            metrics?.query(ok: true)
            metrics?.timings(timings)
            metrics?.searchResults(results)
            return value
        } catch {
            stats.recordQuery(ok: false, timings: nil)
            metrics?.query(ok: false)
            throw error
        }
    }

    /// Retrieval and generation: the response and its stage timings.
    func answer(_ q: QueryOptions, requestID: String, start: ContinuousClock.Instant) async throws -> Ragd_V1_QueryResponse {
        var result = try await coordinator.retrieve(q)
        let genStart = ContinuousClock.now
        let (answer, degraded) = try await withSpan("generate") { span in
            span.attributes["ragd.generator"] = coordinator.generator.id
            return try await generate(q, hits: result.hits)
        }
        result.timings.generate = genStart.elapsedSeconds
        result.timings.total = start.elapsedSeconds
        var r = Ragd_V1_QueryResponse()
        r.answer = answer
        r.sources = result.hits.map(Self.source)
        r.timings = Self.wire(result.timings)
        r.processingTimeSeconds = result.timings.total
        r.queryID = requestID
        r.mode = q.mode.wire
        r.missingShards = result.missingShards.map(UInt32.init)
        if let reason = [result.rerankDegraded, degraded].compactMap({ $0 }).first {
            r.degraded = true
            r.degradedReason = reason
        }
        return r
    }

    /// The answer wanted whole (`Query`): as `generate(_:hits:onToken:)`, but the
    /// extractive generator composes it without splitting it into a token stream.
    func generate(_ q: QueryOptions, hits: [Hit]) async throws -> (String, String?) {
        if let extractive = generator(for: q) as? ExtractiveGenerator {
            return (extractive.compose(question: q.query, sources: Coordinator.generationSources(hits)), nil)
        }
        return try await generate(q, hits: hits) { _ in }
    }

    /// The configured generator, with the query's answer length applied to an extractive one.
    private func generator(for q: QueryOptions) -> any Generator {
        if let n = q.answerMaxCharacters, var extractive = coordinator.generator as? ExtractiveGenerator {
            extractive.maxCharacters = n
            return extractive
        }
        return coordinator.generator
    }

    /// Runs the generator, forwarding tokens and recording token usage. If a model
    /// provider fails before its first token, the extractive generator answers
    /// instead and the reason is returned (unless the query is strict: then the
    /// call fails with UNAVAILABLE). A failure after tokens went out fails the call.
    func generate(_ q: QueryOptions, hits: [Hit], onToken: @Sendable (String) async throws -> Void) async throws -> (String, String?) {
        let generator = self.generator(for: q)
        let sources = Coordinator.generationSources(hits)
        var text = ""
        do {
            for try await event in generator.events(question: q.query, sources: sources) {
                switch event {
                case .token(let t):
                    text += t
                    try await onToken(t)
                case .usage(let prompt, let completion):
                    metrics?.tokens(prompt: prompt, completion: completion)
                    stats.recordTokens(prompt: prompt, completion: completion)
                }
            }
            // A stream's iteration simply ends when the task is cancelled: that is
            // an interrupted answer, not a complete (possibly empty) one.
            try Task.checkCancellation()
            return (text, nil)
        } catch {
            if error is CancellationError || Task.isCancelled { throw error }
            let reason = "generator \(generator.id) failed: \(RagError(from: error).message)"
            guard text.isEmpty, !(generator is ExtractiveGenerator) else { throw error }
            if q.strict || coordinator.configuration.strictGeneration { throw RagError(.unavailable, reason) }
            var fallback = ExtractiveGenerator()
            if let n = q.answerMaxCharacters { fallback.maxCharacters = n }
            for try await t in fallback.generate(question: q.query, sources: sources) {
                text += t
                try await onToken(t)
            }
            return (text, reason)
        }
    }

    func query(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        let request = try FrameCodec.payload(Ragd_V1_QueryRequest.self, from: payload)
        try ctx.principal.require(collection: request.collection)
        try ctx.principal.spendQueries()
        let start = ContinuousClock.now
        var assignment: (experiment: String, variant: String, record: Bool)?
        let response: Ragd_V1_QueryResponse = try await recorded {
            var q = try options(request)
            if let (experiment, variant, running) = experiments?.current(on: q.collection, userID: q.userID) {
                assignment = (experiment.name, variant.name, running)
                q = try await apply(variant.config, to: q, experiment: experiment.name, variant: variant.name)
            }
            let validated = try coordinator.validate(q)
            q = validated
            let variantKey = assignment.map { "\($0.experiment)/\($0.variant)" } ?? ""
            // A partial answer is never cached (nor served from cache: it asked for best effort now).
            if let cache, cache.settings.enabled, !q.noCache, !q.allowPartial {
                let handle = try await coordinator.registry.get(q.collection)
                if let shared = await cache.sharedGeneration(q.collection) {
                    let key = QueryCache.key(q, generation: "\(handle.info.generation).\(shared)", configuration: coordinator.configurationID,
                                             variant: variantKey, foldCase: coordinator.ignoresQueryCase)
                    let (bytes, level) = try await cache.value(for: key) { [self] in
                        let r = try await answer(validated, requestID: ctx.requestID, start: start)
                        return (try FrameCodec.bytes(r), cacheable: !r.degraded)
                    }
                    var r = try FrameCodec.payload(Ragd_V1_QueryResponse.self, from: bytes)
                    if !level.isEmpty {
                        // Served from cache: this request's own id and timings.
                        r.cached = true
                        r.cacheLevel = level
                        r.queryID = ctx.requestID
                        r.processingTimeSeconds = start.elapsedSeconds
                        r.timings = Self.wire(StageTimings(total: r.processingTimeSeconds))
                    }
                    return (r, Self.timings(r.timings), r.sources.count)
                }
            }
            cache?.countBypass()
            let r = try await answer(q, requestID: ctx.requestID, start: start)
            return (r, Self.timings(r.timings), r.sources.count)
        }
        var out = response
        if let a = assignment {
            out.experiment = a.experiment
            out.variant = a.variant
            if a.record {
                try? experiments?.record(ExperimentStore.Record(
                    queryID: Self.feedbackID(ctx.requestID, ctx.principal), experiment: a.experiment, variant: a.variant, userID: request.userID,
                    totalSeconds: out.timings.totalSeconds, searchSeconds: out.timings.searchSeconds,
                    results: out.sources.count, cacheHit: out.cached))
            }
        }
        return try FrameCodec.bytes(out)
    }

    static func timings(_ w: Ragd_V1_Timings) -> StageTimings {
        StageTimings(embed: w.embedSeconds, search: w.searchSeconds, rerank: w.rerankSeconds, generate: w.generateSeconds, total: w.totalSeconds)
    }

    func stream(_ payload: Data, _ ctx: CallContext, _ sink: StreamSink) async throws {
        let request = try FrameCodec.payload(Ragd_V1_QueryRequest.self, from: payload)
        try ctx.principal.require(collection: request.collection)
        try ctx.principal.spendQueries()
        let start = ContinuousClock.now
        let _: Void = try await recorded {
            let q = try options(request)
            var result = try await coordinator.retrieve(q)
            var event = Ragd_V1_StreamEvent()
            event.sources = Ragd_V1_SourcesEvent.with { $0.sources = result.hits.map(Self.source) }
            try await sink(try FrameCodec.bytes(event))
            let genStart = ContinuousClock.now
            let (_, degraded) = try await generate(q, hits: result.hits) { token in
                var t = Ragd_V1_StreamEvent()
                t.token = token
                try await sink(try FrameCodec.bytes(t))
            }
            result.timings.generate = genStart.elapsedSeconds
            result.timings.total = start.elapsedSeconds
            var done = Ragd_V1_StreamEvent()
            done.done = Ragd_V1_StreamDone.with {
                $0.processingTimeSeconds = result.timings.total
                $0.timings = Self.wire(result.timings)
                $0.queryID = ctx.requestID
                $0.degraded = degraded != nil
                $0.degradedReason = degraded ?? ""
            }
            try await sink(try FrameCodec.bytes(done))
            return ((), result.timings, result.hits.count)
        }
    }

    func index(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        let request = try FrameCodec.payload(Ragd_V1_IndexRequest.self, from: payload)
        try ctx.principal.require(collection: request.collection)
        let docs = try request.documents.map { (d) throws(RagError) in try RagDocument(wire: d) }
        try ctx.principal.spendDocuments(docs.count)
        let summary = try await coordinator.index(collection: request.collection, documents: docs,
                                                  chunkSize: Int(request.chunkSize), chunkOverlap: Int(request.chunkOverlap),
                                                  vectorIndex: request.index)
        ctx.logger.info("indexed \(summary.documents) documents, \(summary.chunks) chunks into \(request.collection)")
        return try FrameCodec.bytes(summary.wire)
    }

    /// Indexes batch by batch (--job-batch-size documents), reporting progress after each commit.
    func indexStream(_ payload: Data, _ ctx: CallContext, _ sink: StreamSink) async throws {
        let request = try FrameCodec.payload(Ragd_V1_IndexRequest.self, from: payload)
        // The same checks as Index, for the whole call, before the first batch commits.
        try CollectionRegistry.validateName(request.collection)
        _ = try Coordinator.validIndex(request.index)
        try ctx.principal.require(collection: request.collection)
        let docs = try Coordinator.validate(request.documents.map { (d) throws(RagError) in try RagDocument(wire: d) },
                                            limits: coordinator.configuration.requests)
        try ctx.principal.spendDocuments(docs.count)
        let start = ContinuousClock.now
        var total = IndexSummary()
        var done = 0
        let batch = max(1, coordinator.configuration.jobs.batchSize)  // --job-batch-size: one commit and one progress event each
        for first in stride(from: 0, to: docs.count, by: batch) {
            let slice = Array(docs[first..<min(first + batch, docs.count)])
            total += try await coordinator.indexBatch(collection: request.collection, documents: slice, chunkSize: Int(request.chunkSize),
                                                      chunkOverlap: Int(request.chunkOverlap), vectorIndex: request.index,
                                                      committedBefore: done)
            done += slice.count
            var event = Ragd_V1_IndexEvent()
            event.progress = Ragd_V1_IndexProgress.with {
                $0.documentsDone = UInt64(done)
                $0.documentsTotal = UInt64(docs.count)
                $0.chunksDone = UInt64(total.chunks)
                $0.documentsPerSecond = Double(done) / max(start.elapsedSeconds, 1e-9)
            }
            try await sink(try FrameCodec.bytes(event))
        }
        var event = Ragd_V1_IndexEvent()
        event.done = total.wire
        try await sink(try FrameCodec.bytes(event))
    }

    func delete(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        let request = try FrameCodec.payload(Ragd_V1_DeleteRequest.self, from: payload)
        try ctx.principal.require(collection: request.collection)
        let (deleted, notFound) = try await coordinator.delete(collection: request.collection, documentIDs: request.documentIds)
        ctx.logger.info("deleted \(deleted) documents from \(request.collection)")
        var r = Ragd_V1_DeleteResponse()
        r.deleted = UInt32(deleted)
        r.notFound = notFound
        return try FrameCodec.bytes(r)
    }
}
