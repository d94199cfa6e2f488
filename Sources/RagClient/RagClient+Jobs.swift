import Foundation
import RagCore
import RagWire

public typealias Job = Ragd_V1_Job

extension Job {
    /// True once the job succeeded, failed or was cancelled.
    public var isFinished: Bool { ["succeeded", "failed", "cancelled"].contains(state) }
}

extension RagClient {
    /// Submits an index job and returns at once (state `queued`). Documents
    /// beyond `partBytes` of protobuf go up in further parts (the job is
    /// `staging` until the last one), so a job may be far larger than a frame.
    public func submitIndexJob(
        _ documents: [RagDocument], collection: String, chunkSize: Int = 0, chunkOverlap: Int = 0, maxRetries: Int = 0,
        partBytes: Int = 4 << 20, timeout: Duration? = nil
    ) async throws(RagError) -> Job {
        guard !documents.isEmpty else { throw .invalidArgument("an index job needs documents") }
        var parts: [[Ragd_V1_Document]] = [[]]
        var bytes = 0
        for d in documents {
            let w = d.wire
            let size = ((try? w.serializedBytes() as [UInt8])?.count ?? d.text.utf8.count) + 8
            if !parts[parts.count - 1].isEmpty && bytes + size > partBytes { parts.append([]); bytes = 0 }
            parts[parts.count - 1].append(w)
            bytes += size
        }
        var spec = Ragd_V1_JobSpec()
        spec.maxRetries = UInt32(clamping: maxRetries)
        spec.index = Self.indexRequest(parts[0], collection: collection, chunkSize: chunkSize, chunkOverlap: chunkOverlap)
        var job = try await call(.submitJob, Ragd_V1_SubmitJobRequest.with { $0.spec = spec; $0.more = parts.count > 1 },
                                 as: Ragd_V1_SubmitJobResponse.self, timeout: timeout).job
        for (i, part) in parts.enumerated().dropFirst() {
            let request = Ragd_V1_SubmitJobRequest.with {
                $0.appendTo = job.id
                $0.more = i < parts.count - 1
                $0.spec.index = Ragd_V1_IndexRequest.with { $0.documents = part }
            }
            job = try await call(.submitJob, request, as: Ragd_V1_SubmitJobResponse.self, timeout: timeout).job
        }
        return job
    }

    /// Submits a query job; its result is a `QueryResponse` in `Job.result`.
    public func submitQueryJob(_ request: Ragd_V1_QueryRequest, maxRetries: Int = 0, timeout: Duration? = nil) async throws(RagError) -> Job {
        let spec = Ragd_V1_JobSpec.with { $0.query = request; $0.maxRetries = UInt32(clamping: maxRetries) }
        return try await call(.submitJob, Ragd_V1_SubmitJobRequest.with { $0.spec = spec }, as: Ragd_V1_SubmitJobResponse.self, timeout: timeout).job
    }

    /// Submits a reindex of `collection` (see `Ragd_V1_ReindexRequest`); its
    /// result is a `ReindexResponse` in `Job.result`, its progress in documents.
    public func submitReindexJob(collection: String, embedder: String = "", chunkSize: Int = 0, chunkOverlap: Int = 0, index: String = "",
                                 maxRetries: Int = 0, timeout: Duration? = nil) async throws(RagError) -> Job {
        let spec = Ragd_V1_JobSpec.with {
            $0.reindex = .with {
                $0.collection = collection
                $0.embedder = embedder
                $0.chunkSize = UInt32(clamping: chunkSize)
                $0.chunkOverlap = UInt32(clamping: chunkOverlap)
                $0.index = index
            }
            $0.maxRetries = UInt32(clamping: maxRetries)
        }
        return try await call(.submitJob, Ragd_V1_SubmitJobRequest.with { $0.spec = spec }, as: Ragd_V1_SubmitJobResponse.self, timeout: timeout).job
    }

    public func job(_ id: String, timeout: Duration? = nil) async throws(RagError) -> Job {
        try await call(.getJob, Ragd_V1_GetJobRequest.with { $0.id = id }, as: Ragd_V1_GetJobResponse.self, timeout: timeout).job
    }

    /// Jobs, oldest first; `state` empty for all.
    public func jobs(state: String = "", timeout: Duration? = nil) async throws(RagError) -> [Job] {
        try await call(.listJobs, Ragd_V1_ListJobsRequest.with { $0.state = state }, as: Ragd_V1_ListJobsResponse.self, timeout: timeout).jobs
    }

    public func cancelJob(_ id: String, timeout: Duration? = nil) async throws(RagError) -> Job {
        try await call(.cancelJob, Ragd_V1_CancelJobRequest.with { $0.id = id }, as: Ragd_V1_CancelJobResponse.self, timeout: timeout).job
    }

    /// Polls until the job finishes (or `limit` passes: DEADLINE_EXCEEDED);
    /// `progress` sees every state read. Returns the finished job, whatever its state.
    public func waitForJob(_ id: String, every interval: Duration = .milliseconds(200), limit: Duration? = nil,
                           progress: (Job) -> Void = { _ in }) async throws(RagError) -> Job {
        let start = ContinuousClock.now
        while true {
            let j = try await job(id)
            progress(j)
            if j.isFinished { return j }
            if let limit, start.duration(to: .now) > limit { throw RagError(.deadlineExceeded, "job \(id) did not finish within \(limit)") }
            do { try await Task.sleep(for: interval) } catch { throw RagError(.cancelled, "waiting for job \(id) was cancelled") }
        }
    }
}
