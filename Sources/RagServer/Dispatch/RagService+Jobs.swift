import Foundation
import RagCore
import RagWire

extension RagService {
    func runner() throws(RagError) -> JobRunner {
        guard let jobs else { throw RagError(.unimplemented, "jobs are not available on this node") }
        return jobs
    }

    func submitJob(_ payload: Data) throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_SubmitJobRequest.self, from: payload)
        return try FrameCodec.bytes(Ragd_V1_SubmitJobResponse.with { $0.job = try runner().submit(r.spec) })
    }

    func getJob(_ payload: Data) throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_GetJobRequest.self, from: payload)
        guard let job = try runner().store.get(r.id) else { throw RagError.notFound("job \(r.id.debugDescription) does not exist") }
        return try FrameCodec.bytes(Ragd_V1_GetJobResponse.with { $0.job = job })
    }

    func listJobs(_ payload: Data) throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ListJobsRequest.self, from: payload)
        guard ["", "queued", "running", "succeeded", "failed", "cancelled"].contains(r.state) else {
            throw RagError.invalidArgument("unknown job state \(r.state.debugDescription)")
        }
        return try FrameCodec.bytes(Ragd_V1_ListJobsResponse.with { $0.jobs = try runner().store.list(state: r.state) })
    }

    func cancelJob(_ payload: Data) throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_CancelJobRequest.self, from: payload)
        return try FrameCodec.bytes(Ragd_V1_CancelJobResponse.with { $0.job = try runner().cancel(r.id) })
    }
}
