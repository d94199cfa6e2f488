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
public final class JobRunner: Sendable {
    public struct Settings: Sendable {
        public var indexWorkers = 1
        public var queryWorkers = 2
        public var maxRetries = 3
        public var backoffBase: Duration = .seconds(2)
        /// Documents per batch inside an index job (progress is saved after each).
        public var batchSize = 64
        public init() {}
    }

    let store: JobStore
    let settings: Settings
    let coordinator: Coordinator
    let runQuery: @Sendable (Ragd_V1_QueryRequest) async throws -> Data
    let logger: Logger
    private let running = Mutex<[String: Task<Void, Never>]>([:])

    public init(store: JobStore, settings: Settings, coordinator: Coordinator, logger: Logger,
                runQuery: @escaping @Sendable (Ragd_V1_QueryRequest) async throws -> Data) {
        self.store = store
        self.settings = settings
        self.coordinator = coordinator
        self.logger = logger
        self.runQuery = runQuery
    }

    public func submit(_ spec: Ragd_V1_JobSpec) throws(RagError) -> Ragd_V1_Job {
        let id = UUID().uuidString.lowercased()
        switch spec.work {
        case .index(let r):
            try CollectionRegistry.validateName(r.collection)
            guard !r.documents.isEmpty else { throw .invalidArgument("index job has no documents") }
            try store.insert(id: id, kind: "index", spec: try FrameCodec.bytes(spec), total: r.documents.count)
        case .query(let r):
            try CollectionRegistry.validateName(r.collection)
            try store.insert(id: id, kind: "query", spec: try FrameCodec.bytes(spec), total: 1)
        case nil:
            throw .invalidArgument("a job needs an index or a query")
        }
        return try store.get(id)!
    }

    public func cancel(_ id: String) throws(RagError) -> Ragd_V1_Job {
        guard try store.get(id) != nil else { throw .notFound("job \(id.debugDescription) does not exist") }
        if try store.cancel(id) { running.withLock { $0[id] }?.cancel() }
        return try store.get(id)!
    }

    /// Worker loops until cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<settings.indexWorkers { group.addTask { await self.worker(kind: "index") } }
            for _ in 0..<settings.queryWorkers { group.addTask { await self.worker(kind: "query") } }
        }
    }

    func worker(kind: String) async {
        while !Task.isCancelled {
            guard let claimed = try? store.claim(kind: kind) else {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            let task = Task { await self.attempt(claimed.id, spec: claimed.spec, attempt: claimed.attempts) }
            running.withLock { $0[claimed.id] = task }
            await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
            running.withLock { $0[claimed.id] = nil }
        }
    }

    static func retryable(_ code: RagError.Code) -> Bool {
        [.unavailable, .deadlineExceeded, .resourceExhausted, .aborted].contains(code)
    }

    func attempt(_ id: String, spec data: Data, attempt: Int) async {
        do {
            let spec = try FrameCodec.payload(Ragd_V1_JobSpec.self, from: data)
            let result: Data
            switch spec.work {
            case .index(let r): result = try await index(id, r)
            case .query(let r): result = try await runQuery(r)
            case nil: throw RagError.invalidArgument("empty job")
            }
            try store.finish(id, state: "succeeded", result: result)
        } catch {
            if Task.isCancelled || (try? store.get(id))??.state == "cancelled" { return }  // cancelled: already recorded
            let e = RagError(from: error)
            let spec = try? FrameCodec.payload(Ragd_V1_JobSpec.self, from: data)
            let maxRetries = spec.map { $0.maxRetries > 0 ? Int($0.maxRetries) : settings.maxRetries } ?? settings.maxRetries
            var backoff: Double?
            if Self.retryable(e.code), attempt <= maxRetries {
                let base = Double(settings.backoffBase.components.seconds) + Double(settings.backoffBase.components.attoseconds) * 1e-18
                backoff = base * pow(2, Double(attempt - 1)) * Double.random(in: 0.75...1.25)
            }
            logger.warning("job \(id) attempt \(attempt) failed: \(e)\(backoff.map { String(format: "; retry in %.2f s", $0) } ?? "")")
            try? store.failAttempt(id, error: "attempt \(attempt): \(e)", retryAfter: backoff)
        }
    }

    /// Indexes in batches, saving progress after each; re-running after a restart
    /// skips documents already stored unchanged (content hash), so nothing duplicates.
    func index(_ id: String, _ r: Ragd_V1_IndexRequest) async throws -> Data {
        var total = Ragd_V1_IndexResponse()
        var done = 0
        for start in stride(from: 0, to: r.documents.count, by: max(1, settings.batchSize)) {
            try Task.checkCancellation()
            let batch = r.documents[start..<min(start + settings.batchSize, r.documents.count)]
            let docs = try batch.map { (d) throws(RagError) in RagDocument(id: d.id, text: d.text, metadata: try metadata(fromWire: d.metadata)) }
            let s = try await coordinator.index(collection: r.collection, documents: docs, chunkSize: Int(r.chunkSize), chunkOverlap: Int(r.chunkOverlap))
            total.documents += UInt32(s.documents)
            total.chunks += UInt32(s.chunks)
            total.replaced += UInt32(s.replaced)
            total.unchanged += UInt32(s.unchanged)
            done += batch.count
            try store.progress(id, done: done)
        }
        return try FrameCodec.bytes(total)
    }
}
