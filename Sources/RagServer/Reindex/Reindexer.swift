import Foundation
import Logging
import RagCore
import RagEngine
import RagStore
import Synchronization

/// What a reindex is asked to build.
public struct ReindexOptions: Sendable {
    public var collection: String
    /// "" (this server's), "auto", an embedder family ("minilm", "hashing") or a full id: it must be this server's.
    public var embedder: String
    /// 0 with overlap 0: the collection's chunking.
    public var chunkSize: Int
    public var chunkOverlap: Int
    /// A chunking profile: fill that profile's index instead (`Reindexer.backfill`).
    public var profile: String
    /// The vector index the rebuilt collection gets ("": the collection's current one).
    public var index: String

    public init(collection: String, embedder: String = "", chunkSize: Int = 0, chunkOverlap: Int = 0, profile: String = "", index: String = "") {
        self.profile = profile
        self.index = index
        self.collection = collection
        self.embedder = embedder
        self.chunkSize = chunkSize
        self.chunkOverlap = chunkOverlap
    }
}

/// What a finished reindex built.
public struct ReindexSummary: Sendable {
    public var collection = ""
    public var embedder = ""
    public var chunkSize = 0
    public var chunkOverlap = 0
    public var documents = 0
    public var reembedded = 0
    public var withoutSource = 0
    public var skipped = 0
}

/// Rebuilds a collection with this server's embedder and a chunking, beside its
/// current storage, then switches to the new storage in one catalog update.
///
/// 1. The build is recorded in the catalog with the collection's writes drained
///    (its gate held exclusively): from then on every write goes to both
///    storages, also after a restart.
/// 2. Every document is re-chunked and re-embedded from its kept source text,
///    page by page. A page is committed with the gate held, after checking that
///    the current storage still holds what was read: a document a live write
///    changed or deleted meanwhile is skipped (the live write is in the build).
/// 3. Passes repeat until one finds nothing to do and no mirrored write failed
///    since it began; documents the build holds and the collection no longer
///    does are removed; the catalog switches; the old storage is deleted a
///    little later (queries that began on it finish first).
///
/// A resumed job (restart, retry) starts over, but skips every document the
/// build already holds in its final form (content hashes), so only what is
/// missing is embedded again. Single servers only: shard nodes and
/// coordinators sharing an etcd catalog refuse it (see `check`).
public final class Reindexer: Sendable {
    let coordinator: Coordinator
    let dataDirectory: String
    let logger: Logger
    /// How long the old storage stays after a switch, for queries that began on it.
    let retireAfter: Duration
    static let pageSize = 32
    /// Storages switched away from and not yet deleted (`retire`).
    let retiring = Mutex<Set<String>>([])
    /// Reindex jobs submitted here and not known to be over, by collection: a
    /// second one is refused while the first waits to start (once it runs, the
    /// catalog's `building` says so, also after a restart).
    let submitted = Mutex<[String: String]>([:])
    /// Pages committed by this process (for `Failpoint`).
    let pagesCommitted = Atomic<Int>(0)

    public init(coordinator: Coordinator, dataDirectory: String, logger: Logger, retireAfter: Duration = .seconds(5)) {
        self.coordinator = coordinator
        self.dataDirectory = dataDirectory
        self.logger = logger
        self.retireAfter = retireAfter
    }

    var registry: CollectionRegistry { coordinator.registry }

    /// Checks a request before it is queued; returns how many documents it rebuilds.
    public func check(_ o: ReindexOptions, jobState: (String) async -> String?) async throws(RagError) -> Int {
        try CollectionRegistry.validateName(o.collection)
        guard !registry.isSharedCatalog else { throw EtcdCatalog.reindexUnsupported }
        try checkEmbedder(o.embedder)
        _ = try Coordinator.chunker(size: o.chunkSize, overlap: o.chunkOverlap)
        let handle = try await registry.get(o.collection)
        if !o.profile.isEmpty { _ = try profile(o) }
        if o.profile.isEmpty, let b = handle.info.building {
            throw .failedPrecondition("collection \(o.collection) is being reindexed by job \(b.job); wait for it or cancel it")
        }
        if let earlier = submitted.withLock({ $0[Self.key(o)] }) {
            if let state = await jobState(earlier), ["staging", "queued", "running", ""].contains(state) {
                throw .failedPrecondition("collection \(o.collection) is being reindexed by job \(earlier); wait for it or cancel it")
            }
            submitted.withLock { _ = $0.removeValue(forKey: Self.key(o)) }
        }
        var total = 0
        for shard in try local(handle) { total += await shard.counts().documents }
        return total
    }

    /// What `submitted` knows a job by: its collection, or its profile's index.
    static func key(_ o: ReindexOptions) -> String {
        o.profile.isEmpty ? o.collection : ExperimentManager.variantCollection(o.collection, profile: o.profile)
    }

    /// The collection's partitions in this process (reindex reads them directly).
    func local(_ handle: CollectionHandle) throws(RagError) -> [LocalShard] {
        let shards = handle.shards.compactMap { $0 as? LocalShard }
        guard shards.count == handle.shards.count else {
            throw .failedPrecondition("reindex runs on single servers; this server's collections live on shard nodes")
        }
        return shards
    }

    func checkEmbedder(_ name: String) throws(RagError) {
        let id = coordinator.embedder.id
        let family = Coordinator.embedderFlag(for: id).replacingOccurrences(of: "--embedder ", with: "")
        guard name.isEmpty || name == "auto" || name == id || name == family else {
            throw .failedPrecondition("this server embeds with \(id); reindexing with \(name.truncatedUTF8(maxBytes: 64).debugDescription) needs a server started with --embedder \(name.truncatedUTF8(maxBytes: 64))")
        }
    }

    /// The chunking to build with: the request's, else the collection's.
    func chunking(_ o: ReindexOptions, _ info: CollectionInfo) throws(RagError) -> (size: Int, overlap: Int, chunker: Chunker) {
        guard o.chunkSize >= 0, o.chunkOverlap >= 0 else { throw .invalidArgument("chunk size and overlap must not be negative") }
        let (size, overlap) = o.chunkSize == 0 && o.chunkOverlap == 0 ? (info.chunkSize, info.chunkOverlap) : (o.chunkSize, o.chunkOverlap)
        return (size, overlap, try Coordinator.chunker(size: size, overlap: overlap))
    }

    /// The next storage name: `<name>~r<n>` one above the current one's.
    static func nextStorage(name: String, current storage: String) -> String {
        let n = storage.split(separator: "~").last.flatMap { $0.hasPrefix("r") ? Int($0.dropFirst()) : nil } ?? 0
        return "\(name)~r\(n + 1)"
    }

    /// Runs a reindex job (also a resumed one); `progress` gets documents done.
    public func run(job: String, _ o: ReindexOptions, progress: (Int) async throws -> Void) async throws -> ReindexSummary {
        try checkEmbedder(o.embedder)
        if !o.profile.isEmpty { return try await backfill(job: job, o, progress: progress) }
        let name = o.collection
        let old = try await registry.get(name)
        let sources = try local(old)
        let (size, overlap, _) = try chunking(o, old.info)
        let embedder = coordinator.embedder
        let index = o.index.isEmpty ? old.info.index : try Coordinator.validIndex(o.index)
        let planned = old.info.building ?? StorageBuild(storage: Self.nextStorage(name: name, current: old.info.storage), embedder: embedder.id, dimension: embedder.dimension,
                                                         chunkSize: size, chunkOverlap: overlap, job: job,
                                                         index: index)
        // A build resumes as it began (`recover` abandons one this server cannot embed for).
        let chunker = try Coordinator.chunker(size: planned.chunkSize, overlap: planned.chunkOverlap)
        guard planned.embedder == embedder.id else {
            throw RagError.failedPrecondition("the unfinished build of \(name) embeds with \(planned.embedder); this server embeds with \(embedder.id)")
        }
        let target = try await coordinator.exclusively(name) { try await registry.beginBuild(name, planned) }
        let targets = Target(shards: try local(target), placedUnder: name)
        logger.info("reindex of \(name) (job \(job)): building \(planned.storage) with \(planned.embedder), chunks \(planned.chunkSize == 0 ? "default" : "\(planned.chunkSize)/\(planned.chunkOverlap)")")
        var summary = ReindexSummary(collection: name, embedder: planned.embedder, chunkSize: planned.chunkSize, chunkOverlap: planned.chunkOverlap)
        var pass = 0
        while true {
            pass += 1
            let failuresBefore = coordinator.mirrorFailures.load(ordering: .relaxed)
            try await rebuildPass(name, sources: sources, target: targets, chunker: chunker, summary: &summary,
                                  progress: { if pass == 1 { try await progress($0) } })
            // The switch happens with writes held off. Each page was checked against
            // the live writes when it was committed, and those writes reach the
            // build too: only a mirrored write that failed since the pass began
            // (the build may lack it) calls for another pass.
            let switched = try await coordinator.exclusively(name) { () async throws -> CollectionHandle? in
                guard coordinator.mirrorFailures.load(ordering: .relaxed) == failuresBefore else { return nil }
                summary.skipped += try await removeExtra(sources: sources, target: targets)
                let retired = try await registry.finishBuild(name)
                try await coordinator.recordWrite(name)
                return retired
            }
            if let retired = switched {
                retire(retired)
                break
            }
            guard pass < 5 else { throw RagError(.aborted, "reindex of \(name): writes kept failing to reach the new index; the job retries") }
        }
        for shard in targets.shards { summary.documents += await shard.counts().documents }
        logger.info("reindex of \(name) (job \(job)): switched to \(planned.storage): \(summary.documents) documents, \(summary.reembedded) embedded, \(summary.withoutSource) without a kept source, \(summary.skipped) skipped")
        return summary
    }

    /// Where rebuilt documents go: a storage's partitions, and which one holds a
    /// document (by the name documents are placed under, which for a chunking
    /// profile's index is not the collection's).
    struct Target {
        var shards: [LocalShard]
        var placedUnder: String

        func partition(_ id: String) -> Int {
            StableHash.partition(collection: placedUnder, documentID: id, count: shards.count)
        }

        func grouped<T>(_ items: [T], id: (T) -> String) -> [Int: [T]] {
            Dictionary(grouping: items) { partition(id($0)) }
        }
    }

    /// One walk over every document, writing what the target lacks.
    /// `name` is the collection whose gate orders the build against its writes.
    func rebuildPass(_ name: String, sources: [LocalShard], target: Target, chunker: Chunker, summary: inout ReindexSummary,
                     progress: (Int) async throws -> Void) async throws {
        var done = 0
        for source in sources {
            let ids = await source.documentIDs().sorted()
            for start in stride(from: 0, to: ids.count, by: Self.pageSize) {
                try Task.checkCancellation()
                let page = Array(ids[start..<min(start + Self.pageSize, ids.count)])
                let docs = try await source.stored(page)
                let (built, withoutSource) = try await rebuild(docs, target: target, chunker: chunker)
                summary.withoutSource += withoutSource
                if !built.isEmpty {
                    let read = Dictionary(docs.map { ($0.id, $0.contentHash) }, uniquingKeysWith: { a, _ in a })
                    let kept = try await coordinator.exclusively(name) { () async throws -> Int in
                        let now = await source.contentHashes(built.map(\.id))
                        let kept = built.filter { now[$0.id] != nil && now[$0.id] == read[$0.id] }
                        for (p, docs) in target.grouped(kept, id: \.id) { _ = try await target.shards[p].write(upserts: docs, deletes: []) }
                        return kept.count
                    }
                    summary.skipped += built.count - kept
                    summary.reembedded += kept
                }
                done += page.count
                try await progress(done)
                try await Failpoint.reindexPageCommitted(pagesCommitted.wrappingAdd(1, ordering: .relaxed).newValue)
            }
        }
    }

    /// The documents of a page as the target stores them, leaving out those it
    /// already holds in that form; and how many had no kept source.
    func rebuild(_ docs: [PreparedDocument], target: Target, chunker: Chunker) async throws -> ([PreparedDocument], Int) {
        let embedder = coordinator.embedder
        var existing: [String: UInt64] = [:]
        for (p, ids) in target.grouped(docs.map(\.id), id: { $0 }) {
            existing.merge(await target.shards[p].contentHashes(ids)) { a, _ in a }
        }
        var out: [PreparedDocument] = []
        var withoutSource = 0
        for d in docs {
            let doc: PreparedDocument
            if d.source.isEmpty {
                // Indexed before sources were kept: its chunks are all there is, embedded again as they are.
                withoutSource += 1
                let hash = StableHash.fnv1a("\u{1E}kept-chunks\u{1E}\(embedder.id)|\(Coordinator.embeddingInputFormat)", seed: d.contentHash)
                doc = PreparedDocument(id: d.id, metadata: d.metadata, contentHash: hash, chunks: d.chunks, embeddings: [])
            } else {
                let text = try SourceText.decompress(d.source)
                let hash = Coordinator.contentHash(RagDocument(id: d.id, text: text, metadata: d.metadata), chunker: chunker, embedder: embedder.id)
                doc = PreparedDocument(id: d.id, metadata: d.metadata, contentHash: hash, chunks: chunker.chunks(text), embeddings: [], source: d.source)
            }
            if existing[d.id] == doc.contentHash { continue }
            out.append(doc)
        }
        try await coordinator.embed(&out)
        return (out, withoutSource)
    }

    /// Removes what the target holds and the collection does not (a delete whose
    /// mirror failed); called with the gate held. Returns how many.
    func removeExtra(sources: [LocalShard], target: Target) async throws -> Int {
        var keep = Set<String>()
        for source in sources { keep.formUnion(await source.documentIDs()) }
        var removed = 0
        for shard in target.shards {
            let extra = await shard.documentIDs().filter { !keep.contains($0) }
            if !extra.isEmpty { removed += try await shard.write(upserts: [], deletes: extra).count }
        }
        return removed
    }
}
