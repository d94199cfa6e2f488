import Foundation
import RagCore
import RagWire

extension RagService {
    func runner() throws(RagError) -> JobRunner {
        guard let jobs else { throw RagError(.unimplemented, "jobs are not available on this node") }
        return jobs
    }

    func submitJob(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_SubmitJobRequest.self, from: payload)
        let job = try await runner().submit(r)
        return try FrameCodec.bytes(Ragd_V1_SubmitJobResponse.with { $0.job = job })
    }

    func getJob(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_GetJobRequest.self, from: payload)
        let job = try await runner().job(r.id)
        return try FrameCodec.bytes(Ragd_V1_GetJobResponse.with { $0.job = job })
    }

    func listJobs(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ListJobsRequest.self, from: payload)
        guard ["", "staging", "queued", "running", "succeeded", "failed", "cancelled"].contains(r.state) else {
            throw RagError.invalidArgument("unknown job state \(r.state.debugDescription)")
        }
        let runner = try runner()
        let jobs = try await runner.queue.checked { try await runner.queue.list(state: r.state) }
        return try FrameCodec.bytes(Ragd_V1_ListJobsResponse.with { $0.jobs = jobs })
    }

    func cancelJob(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_CancelJobRequest.self, from: payload)
        let job = try await runner().cancel(r.id)
        return try FrameCodec.bytes(Ragd_V1_CancelJobResponse.with { $0.job = job })
    }
}
