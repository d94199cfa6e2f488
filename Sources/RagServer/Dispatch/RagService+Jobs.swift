import Foundation
import RagCore
import RagWire

// Jobs belong to the key that submitted them: other keys (but admins) neither
// see nor cancel them, and hear NOT_FOUND, so job ids cannot be probed.
extension RagService {
    func runner() throws(RagError) -> JobRunner {
        guard let jobs else { throw RagError(.unimplemented, "jobs are not available on this node") }
        return jobs
    }

    func submitJob(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        var r = try FrameCodec.payload(Ragd_V1_SubmitJobRequest.self, from: payload)
        let runner = try runner()
        if !r.appendTo.isEmpty { _ = try await visibleJob(r.appendTo, ctx) }
        switch r.spec.work {
        case .index(let i):
            try ctx.principal.require(.write, for: "an index job")
            try ctx.principal.require(collection: i.collection)
            _ = try Coordinator.validIndex(i.index)
            try ctx.principal.spendDocuments(i.documents.count)
        case .query(let q):
            try ctx.principal.require(collection: q.collection)
            try ctx.principal.spendQueries()
        case .reindex(let x):
            try ctx.principal.require(.write, for: "a reindex")
            try ctx.principal.require(collection: x.collection)
            _ = try Coordinator.validIndex(x.index)
        case nil:
            break
        }
        r.spec.owner = ctx.principal.keyID
        let job = try await runner.submit(r)
        return try FrameCodec.bytes(Ragd_V1_SubmitJobResponse.with { $0.job = job })
    }

    /// The job, if the caller may see it.
    func visibleJob(_ id: String, _ ctx: CallContext) async throws(RagError) -> Ragd_V1_Job {
        let job = try await runner().job(id)
        guard ctx.principal.owns(jobOwner: job.owner) else { throw .notFound("job \(id.debugDescription) does not exist") }
        return job
    }

    func getJob(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_GetJobRequest.self, from: payload)
        let job = try await visibleJob(r.id, ctx)
        return try FrameCodec.bytes(Ragd_V1_GetJobResponse.with { $0.job = job })
    }

    func listJobs(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ListJobsRequest.self, from: payload)
        guard ["", "staging", "queued", "running", "succeeded", "failed", "cancelled"].contains(r.state) else {
            throw RagError.invalidArgument("unknown job state \(r.state.debugDescription)")
        }
        let runner = try runner()
        let jobs = try await runner.queue.checked { try await runner.queue.list(state: r.state) }
        return try FrameCodec.bytes(Ragd_V1_ListJobsResponse.with { $0.jobs = jobs.filter { ctx.principal.owns(jobOwner: $0.owner) } })
    }

    func cancelJob(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_CancelJobRequest.self, from: payload)
        _ = try await visibleJob(r.id, ctx)
        let job = try await runner().cancel(r.id)
        return try FrameCodec.bytes(Ragd_V1_CancelJobResponse.with { $0.job = job })
    }
}
