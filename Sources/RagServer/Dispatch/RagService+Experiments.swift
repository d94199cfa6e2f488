import Foundation
import RagCore
import RagWire

extension RagService {
    func manager() throws(RagError) -> ExperimentManager {
        guard let experiments else { throw RagError(.unimplemented, "experiments are not available on this node") }
        return experiments
    }

    /// A variant's overrides applied to a query. A chunking profile switches the
    /// query to the collection's index built under that profile.
    func apply(_ c: Ragd_V1_VariantConfig, to q: QueryOptions, experiment: String, variant: String) async throws -> QueryOptions {
        var q = q
        if c.topKValue != nil { q.topK = Int(c.topK) }
        if c.mode != .unspecified { q.mode = SearchMode(wire: c.mode) }
        if c.hasRerank { q.rerank = try Self.rerank(c.rerank) }
        if c.answerMaxCharacters > 0 { q.answerMaxCharacters = Int(c.answerMaxCharacters) }
        if c.hasChunking {
            let name = ExperimentManager.variantCollection(q.collection, profile: c.chunking.name)
            guard (try? await coordinator.registry.get(name)) != nil else {
                throw RagError.failedPrecondition("variant \(variant) of experiment \(experiment) searches chunking profile \(c.chunking.name), "
                    + "which has no index yet: run Index on \(q.collection) again to build it")
            }
            q.collection = name
        }
        return q
    }

    func createExperiment(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_CreateExperimentRequest.self, from: payload)
        let before = Set(coordinator.chunkingProfiles(r.experiment.collection).map(\.name))
        let e = try await manager().create(r.experiment)
        let jobs = await backfill(e, profilesBefore: before, ctx)
        return try FrameCodec.bytes(Ragd_V1_CreateExperimentResponse.with { $0.experiment = e; $0.backfillJobs = jobs })
    }

    /// Submits a job per chunking profile the experiment adds to a collection
    /// that already holds documents, filling that profile's index from the kept
    /// sources (single servers: elsewhere there is no reindexer, and the index
    /// fills with the writes that follow). A job that cannot be submitted is
    /// logged, not an error: the experiment exists either way.
    func backfill(_ e: Ragd_V1_Experiment, profilesBefore: Set<String>, _ ctx: CallContext) async -> [String] {
        guard let jobs, jobs.reindexer != nil, (try? await coordinator.registry.get(e.collection)) != nil else { return [] }
        var ids: [String] = []
        for p in coordinator.chunkingProfiles(e.collection) where !profilesBefore.contains(p.name) {
            let request = Ragd_V1_SubmitJobRequest.with {
                $0.spec.reindex = .with { $0.collection = e.collection; $0.profile = p.name }
                $0.spec.owner = ctx.principal.keyID
            }
            do { ids.append(try await jobs.submit(request).id) } catch {
                ctx.logger.warning("experiment \(e.name): cannot fill the index of chunking profile \(p.name): \(error)")
            }
        }
        return ids
    }

    func listExperiments(_ payload: Data) throws -> Data {
        _ = try FrameCodec.payload(Ragd_V1_ListExperimentsRequest.self, from: payload)
        return try FrameCodec.bytes(Ragd_V1_ListExperimentsResponse.with { $0.experiments = try manager().list() })
    }

    func stopExperiment(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_StopExperimentRequest.self, from: payload)
        let e = try await manager().stop(r.name)
        return try FrameCodec.bytes(Ragd_V1_StopExperimentResponse.with { $0.experiment = e })
    }

    func experimentReport(_ payload: Data) throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ExperimentReportRequest.self, from: payload)
        return try FrameCodec.bytes(try manager().report(r.name))
    }

    /// Where a query's experiment record is kept: under the key that asked it, so
    /// feedback counts only from that key (a client may choose its request ids,
    /// and another key must not be able to vote on its queries).
    static func feedbackID(_ queryID: String, _ principal: Principal) -> String {
        principal.isAnonymous ? queryID : "\(principal.keyID):\(queryID)"
    }

    func feedback(_ payload: Data, _ ctx: CallContext) throws -> Data {
        var r = try FrameCodec.payload(Ragd_V1_FeedbackRequest.self, from: payload)
        r.queryID = Self.feedbackID(r.queryID, ctx.principal)
        let (experiment, variant): (String, String)
        switch r.value {
        case .thumbsUp(let up): (experiment, variant) = try manager().feedback(queryID: r.queryID, thumbsUp: up, relevance: nil)
        case .relevance(let score):
            guard score.isFinite else { throw RagError.invalidArgument("relevance must be a finite number") }
            (experiment, variant) = try manager().feedback(queryID: r.queryID, thumbsUp: nil, relevance: score)
        case nil: throw RagError.invalidArgument("feedback needs thumbs_up or relevance")
        }
        return try FrameCodec.bytes(Ragd_V1_FeedbackResponse.with { $0.experiment = experiment; $0.variant = variant })
    }
}
