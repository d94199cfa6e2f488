import Foundation
import Logging
import RagCore
import RagWire
import Synchronization

/// Runs queued jobs: separate worker pools for indexing and for queries, so a
/// large indexing job cannot starve queries. A failing attempt with a
/// retryable error (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
/// ABORTED: including a model provider's 429/5xx) is retried after an
/// exponentially growing, jittered delay; other errors fail the job at once.
/// While a job runs, its worker renews the claim; if the queue says the job
/// was cancelled or taken over by another worker, the attempt stops.
public final class JobRunner: Sendable {
    public struct Settings: Sendable {
        public var indexWorkers = 1
        public var queryWorkers = 2
        public var maxRetries = 3
        public var backoffBase: Duration = .seconds(2)
        /// Documents per batch inside an index job (progress is saved after each).
        public var batchSize = 64
        /// A running job whose worker has not renewed its claim for this long is
        /// handed to another worker (Redis backend; a SQLite queue has one owner).
        public var visibilityTimeout: Duration = .seconds(30)
        /// Finished jobs (and their results) are deleted this long after they finish.
        public var retention: Duration = .seconds(7 * 86_400)
        /// A staging job (an upload in parts) that gets no part for this long is
        /// failed and its parts dropped: its client went away.
        public var stagingTimeout: Duration = .seconds(3600)
        /// How this worker names itself in the queue (default host/pid).
        public var workerName = "\(ProcessInfo.processInfo.hostName)/\(ProcessInfo.processInfo.processIdentifier)"
        public init() {}
    }

    public let queue: any JobQueue
    let settings: Settings
    let coordinator: Coordinator
    let runQuery: @Sendable (Ragd_V1_QueryRequest) async throws -> Data
    /// Runs reindex jobs (nil where reindex is not available: coordinators, shard nodes).
    let reindexer: Reindexer?
    let logger: Logger
    private let running = Mutex<[String: Task<Void, Never>]>([:])
    private let counts = Mutex<[String: (busy: Int, completed: UInt64)]>([:])
    private let batchesCommitted = Atomic<Int>(0)

    public init(queue: any JobQueue, settings: Settings, coordinator: Coordinator, logger: Logger, reindexer: Reindexer? = nil,
                runQuery: @escaping @Sendable (Ragd_V1_QueryRequest) async throws -> Data) {
        self.reindexer = reindexer
        self.queue = queue
        self.settings = settings
        self.coordinator = coordinator
        self.logger = logger
        self.runQuery = runQuery
    }

    /// Creates a job, or adds a part to a staging one (`append_to`).
    public func submit(_ request: Ragd_V1_SubmitJobRequest) async throws(RagError) -> Ragd_V1_Job {
        if !request.appendTo.isEmpty {
            guard case .index(let r)? = request.spec.work else { throw .invalidArgument("append_to takes documents (an index spec)") }
            try checkPart(r)
            let existing = try await job(request.appendTo)
            guard Int(existing.progressTotal) + r.documents.count <= limits.maxDocumentsPerJob else {
                throw RagError(.resourceExhausted, "a job holds at most \(limits.maxDocumentsPerJob) documents; submit another job")
            }
            try await queue.checked { try await queue.append(id: request.appendTo, part: try Self.part(r), count: r.documents.count, seal: !request.more) }
            return try await job(request.appendTo)
        }
        let id = UUID().uuidString.lowercased()
        var spec = request.spec
        switch spec.work {
        case .index(let r):
            try CollectionRegistry.validateName(r.collection)
            guard !r.documents.isEmpty else { throw .invalidArgument("index job has no documents") }
            try checkPart(r)
            spec.index.documents = []
            let specData = try FrameCodec.bytes(spec)
            try await queue.checked {
                try await queue.create(id: id, kind: "index", spec: specData, part: try Self.part(r), total: r.documents.count, staging: request.more)
            }
        case .query(let r):
            try CollectionRegistry.validateName(r.collection)
            guard !request.more else { throw .invalidArgument("a query job has no parts") }
            let specData = try FrameCodec.bytes(spec)
            try await queue.checked { try await queue.create(id: id, kind: "query", spec: specData, part: nil, total: 1, staging: false) }
        case .reindex(let r):
            guard !request.more else { throw .invalidArgument("a reindex job has no parts") }
            guard let reindexer else { throw .failedPrecondition("reindex runs on single servers; this node does not hold collections itself") }
            let total = try await reindexer.check(Self.options(r), jobState: state)
            let specData = try FrameCodec.bytes(spec)
            try await queue.checked { try await queue.create(id: id, kind: "reindex", spec: specData, part: nil, total: total, staging: false) }
            reindexer.submitted.withLock { $0[Reindexer.key(Self.options(r))] = id }
        case nil:
            throw .invalidArgument("a job needs an index, a query or a reindex")
        }
        return try await job(id)
    }

    /// A part is checked like an Index call (count, ids, sizes) before it is queued:
    /// a job must not hold what Index would refuse.
    func checkPart(_ r: Ragd_V1_IndexRequest) throws(RagError) {
        _ = try Coordinator.validate(try r.documents.map { (d) throws(RagError) in try RagDocument(wire: d) }, limits: limits)
    }

    var limits: RequestLimits { coordinator.configuration.requests }

    static func part(_ r: Ragd_V1_IndexRequest) throws(RagError) -> Data {
        try FrameCodec.bytes(Ragd_V1_IndexRequest.with { $0.documents = r.documents })
    }

    public func job(_ id: String) async throws(RagError) -> Ragd_V1_Job {
        guard let j = try await queue.checked({ try await queue.get(id: id) }) else { throw .notFound("job \(id.debugDescription) does not exist") }
        return j
    }

    public func cancel(_ id: String) async throws(RagError) -> Ragd_V1_Job {
        _ = try await job(id)
        if try await queue.checked({ try await queue.cancel(id: id) }) { running.withLock { $0[id] }?.cancel() }
        return try await job(id)
    }

    /// Worker loops (and an hourly purge of old finished jobs) until cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.janitor() }
            for _ in 0..<settings.indexWorkers { group.addTask { await self.worker(kind: "index") } }
            for _ in 0..<settings.queryWorkers { group.addTask { await self.worker(kind: "query") } }
            if let reindexer {
                group.addTask {
                    // Builds left by jobs that ended while this server was down go first.
                    await reindexer.recover(jobState: self.state)
                    await self.worker(kind: "reindex")
                }
            }
        }
    }

    /// Purges old finished jobs and expires abandoned uploads, at least hourly
    /// and often enough that an upload expires within a quarter of its timeout.
    func janitor() async {
        let age = settings.retention.inSeconds
        let idle = settings.stagingTimeout.inSeconds
        let every = Duration.seconds(min(3600, max(0.5, idle / 4)))
        var lastPurge: ContinuousClock.Instant?
        while !Task.isCancelled {
            if lastPurge.map({ ContinuousClock.now - $0 >= .seconds(3600) }) ?? true {
                if let n = try? await queue.purge(olderThan: age), n > 0 { logger.info("purged \(n) finished jobs older than \(Int(age)) s") }
                lastPurge = .now
            }
            do {
                let expired = try await queue.expireStaging(idleFor: idle)
                if !expired.isEmpty {
                    logger.warning("expired \(expired.count) abandoned uploads (no part for \(Int(idle)) s): \(expired.prefix(10).joined(separator: ", "))")
                }
            } catch {
                logger.debug("staging expiry failed: \(error)")
            }
            try? await Task.sleep(for: every)
        }
    }

    func worker(kind: String) async {
        var failing = false
        while !Task.isCancelled {
            let claimed: ClaimedJob?
            do {
                claimed = try await queue.claim(kind: kind, worker: settings.workerName)
                if failing { logger.info("job queue (\(queue.backend)) is reachable again") }
                failing = false
            } catch {
                if !failing { logger.warning("job queue (\(queue.backend)): \(error)") }
                failing = true
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            guard let claimed else {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            counts.withLock { $0[kind, default: (0, 0)].busy += 1 }
            let task = Task { await self.attempt(claimed) }
            running.withLock { $0[claimed.id] = task }
            await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
            running.withLock { $0[claimed.id] = nil }
            if kind == "reindex" { await reindexer?.recover(jobState: state) }
            counts.withLock { $0[kind, default: (0, 0)].busy -= 1; $0[kind, default: (0, 0)].completed += 1 }
        }
    }

    static func retryable(_ code: RagError.Code) -> Bool {
        [.unavailable, .deadlineExceeded, .resourceExhausted, .aborted].contains(code)
    }

    func attempt(_ claimed: ClaimedJob) async {
        let id = claimed.id
        final class Flag: Sendable { let value = Atomic<Bool>(false) }
        let lost = Flag()
        // Decoded once: the work needs it, and so does the retry decision.
        let spec = try? FrameCodec.payload(Ragd_V1_JobSpec.self, from: claimed.spec)
        let work = Task { () async throws -> Data in
            guard let spec else { throw RagError(.dataLoss, "job \(id) has an unreadable spec") }
            switch spec.work {
            case .index(let r): return try await index(id, r, lost: { lost.value.store(true, ordering: .relaxed) })
            case .query(let r): return try await runQuery(r)
            case .reindex(let r): return try await reindex(id, r, lost: { lost.value.store(true, ordering: .relaxed) })
            case nil: throw RagError.invalidArgument("empty job")
            }
        }
        // Renews the claim; stops the work when the job is cancelled or taken over.
        let renew = Task {
            let every = settings.visibilityTimeout / 3
            while !Task.isCancelled {
                try? await Task.sleep(for: every)
                if Task.isCancelled { return }
                switch try? await queue.heartbeat(id: id, worker: settings.workerName) {
                case .cancelled?: work.cancel(); return
                case .lost?: lost.value.store(true, ordering: .relaxed); work.cancel(); return
                default: continue  // a queue outage: keep working, the next renewal may succeed
                }
            }
        }
        defer { renew.cancel() }
        do {
            let result = try await withTaskCancellationHandler { try await work.value } onCancel: { work.cancel() }
            try await queue.finish(id: id, result: result)
        } catch {
            if lost.value.load(ordering: .relaxed) {
                logger.warning("job \(id): another worker took it over; stopping this attempt")
                return
            }
            // Queue calls below run in tasks of their own: this task may be the one cancelled.
            if (try? await Task { try await queue.get(id: id) }.value)??.state == "cancelled" {
                await Task { await queue.release(id: id) }.value
                return
            }
            if Task.isCancelled {
                // This worker is stopping: the job goes back to the queue for another (or for after the restart).
                do {
                    let note = "attempt \(claimed.attempt): interrupted by a worker stop (\(settings.workerName))"
                    try await Task { try await queue.handBack(id: id, note: note) }.value
                    logger.info("job \(id): handed back to the queue (this worker is stopping)")
                } catch {
                    logger.warning("job \(id): cannot hand it back (\(error)); it is re-delivered after the visibility timeout")
                }
                return
            }
            let e = RagError(from: error)
            let maxRetries = spec.map { $0.maxRetries > 0 ? Int($0.maxRetries) : settings.maxRetries } ?? settings.maxRetries
            var backoff: Double?
            if Self.retryable(e.code), claimed.attempt <= maxRetries {
                backoff = Duration.backoff(base: settings.backoffBase, retry: claimed.attempt - 1, jitter: 0.75...1.25).inSeconds
            }
            logger.warning("job \(id) attempt \(claimed.attempt) failed: \(e)\(backoff.map { String(format: "; retry in %.2f s", $0) } ?? "")")
            do {
                try await queue.failAttempt(id: id, error: "attempt \(claimed.attempt): \(e)", retryAfter: backoff)
            } catch {
                // The delivery stays claimed; once the claim expires another worker retries it.
                logger.error("job \(id): cannot record the failed attempt: \(error)")
            }
        }
    }

    /// Indexes part by part and batch by batch, saving progress after each
    /// batch; memory holds one part (at most a frame) at a time. Re-running
    /// after a restart or a re-delivery skips documents already stored
    /// unchanged (content hash), so nothing is duplicated.
    func index(_ id: String, _ spec: Ragd_V1_IndexRequest, lost: @Sendable () -> Void) async throws -> Data {
        var total = IndexSummary()
        var done = 0
        let size = max(1, settings.batchSize)
        var pending: [Ragd_V1_Document] = []
        func commit(_ batch: ArraySlice<Ragd_V1_Document>) async throws {
            try Task.checkCancellation()
            let docs = try batch.map { (d) throws(RagError) in try RagDocument(wire: d) }
            total += try await coordinator.indexBatch(collection: spec.collection, documents: docs, chunkSize: Int(spec.chunkSize),
                                                      chunkOverlap: Int(spec.chunkOverlap), vectorIndex: spec.index, committedBefore: done)
            done += batch.count
            switch try await queue.progress(id: id, worker: settings.workerName, done: done) {
            case .owned: try await Failpoint.jobBatchCommitted(batchesCommitted.wrappingAdd(1, ordering: .relaxed).newValue)
            case .cancelled: throw CancellationError()
            case .lost: lost(); throw CancellationError()
            }
        }
        // Batches run across part boundaries; jobs stored before parts existed carry their documents in the spec.
        let parts = try await queue.partCount(id: id)
        for p in -1..<parts {
            pending += p < 0 ? spec.documents : try FrameCodec.payload(Ragd_V1_IndexRequest.self, from: try await queue.part(id: id, index: p)).documents
            var start = 0
            while pending.count - start >= size {
                try await commit(pending[start..<start + size])
                start += size
            }
            pending.removeFirst(start)
        }
        if !pending.isEmpty { try await commit(pending[...]) }
        return try FrameCodec.bytes(total.wire)
    }

    static func options(_ r: Ragd_V1_ReindexRequest) -> ReindexOptions {
        ReindexOptions(collection: r.collection, embedder: r.embedder, chunkSize: Int(r.chunkSize), chunkOverlap: Int(r.chunkOverlap), profile: r.profile,
                       index: r.index)
    }

    /// Runs a reindex, saving progress (documents) after each page.
    func reindex(_ id: String, _ r: Ragd_V1_ReindexRequest, lost: @escaping @Sendable () -> Void) async throws -> Data {
        guard let reindexer else { throw RagError.failedPrecondition("reindex is not available on this node") }
        let queue = self.queue
        let worker = settings.workerName
        let s = try await reindexer.run(job: id, Self.options(r)) { done in
            switch try await queue.progress(id: id, worker: worker, done: done) {
            case .owned: break
            case .cancelled: throw CancellationError()
            case .lost: lost(); throw CancellationError()
            }
        }
        return try FrameCodec.bytes(Ragd_V1_ReindexResponse.with {
            $0.collection = s.collection
            $0.embedder = s.embedder
            $0.chunkSize = UInt32(s.chunkSize)
            $0.chunkOverlap = UInt32(s.chunkOverlap)
            $0.documents = UInt64(s.documents)
            $0.reembedded = UInt64(s.reembedded)
            $0.withoutSource = UInt64(s.withoutSource)
            $0.skipped = UInt64(s.skipped)
        })
    }

    /// A job's state ("" when the queue cannot say; nil when it does not exist).
    @Sendable func state(_ id: String) async -> String? {
        do { return try await queue.get(id: id)?.state } catch { return "" }
    }

    /// The index, query and reindex job pools, for Stats.
    public func stats() async -> [Ragd_V1_WorkQueueStats] {
        var out: [Ragd_V1_WorkQueueStats] = []
        for (kind, workers) in [("index", settings.indexWorkers), ("query", settings.queryWorkers), ("reindex", reindexer == nil ? 0 : 1)] where workers > 0 {
            let c = counts.withLock { $0[kind] ?? (0, 0) }
            let waiting = (try? await queue.waiting(kind: kind)) ?? 0
            out.append(.with {
                $0.name = "\(kind)-jobs"
                $0.workers = UInt32(workers)
                $0.busy = UInt32(c.busy)
                $0.waiting = UInt32(waiting)
                $0.completed = c.completed
            })
        }
        return out
    }
}
