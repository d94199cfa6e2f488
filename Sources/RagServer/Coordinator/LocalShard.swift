import Foundation
import RagCore
import RagEngine
import RagStore
import Synchronization

/// A partition in this process: its SQLite file and its in-memory index.
///
/// Writes run on the actor, one at a time: the SQLite commit first, then the
/// in-memory swap under the index's write lock. Searches do not use the
/// actor: they take the read lock, so they run side by side, and during a
/// commit they read the state before it. A query sees a document's old chunks
/// or its new ones, never both or neither. The actor runs on storage threads
/// (`StorageExecutor`), so a commit waiting on the disk holds none of the
/// cooperative pool's.
public actor LocalShard: Shard {
    public nonisolated let partition: Int
    public nonisolated let dimension: Int
    nonisolated let store: PartitionStore
    /// Changed only on the actor under `lock`'s write side; read by searches
    /// under its read side, and on the actor (which writes nothing meanwhile).
    nonisolated(unsafe) let index: PartitionIndex
    nonisolated let lock = ReadWriteLock()
    /// The actor runs on storage threads: its commits block one of those, not the cooperative pool.
    nonisolated let executor = StorageExecutor()
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    /// While this partition receives a copy (a move): the session, and every
    /// document id written through the cluster since it began, with the
    /// sequence number of the entry that wrote it last (`UInt64.max`: an
    /// unsequenced write), so entries arriving out of order never undo a later one.
    nonisolated let receiving = Mutex<(session: String, touched: [String: UInt64])?>(nil)
    /// The last replication log entry applied (0 before the first).
    var applied: (seq: UInt64, version: UInt64)
    /// Sum of `digestTerm` over every stored document, kept as writes apply
    /// (ShardCounts, which Stats calls too, reports it without a scan).
    var digest: UInt64
    /// Log entries kept behind the newest, for replicas that catch up.
    let logKeep: LogRetention
    /// How the vector index is chosen (`auto`: see `LocalShard+AutoIndex.swift`).
    nonisolated let vectorPolicy: VectorIndexPolicy
    /// Set at close: a graph being built is dropped, not installed.
    nonisolated let closing = Atomic<Bool>(false)
    /// Chunks written or deleted since the index image was last saved.
    var changesSinceSave = 0
    /// Orders image files written by background saves and by close: the newest state wins.
    nonisolated let imageFiles = Mutex<ImageFiles>(ImageFiles())
    /// False once `close` closed the store (a background save then leaves the journal alone).
    nonisolated let storeOpen = Mutex(true)

    /// Opens (or creates) the partition file and loads its vectors into memory.
    /// `vectorIndex`: how vectors are searched (the collection's `index`, or
    /// `--vector-index`); with `auto`, decided here by the chunks stored.
    public init(path: String, partition: Int, dimension: Int, synchronous: PartitionStore.Synchronous,
                vectorIndex: VectorIndexPolicy = VectorIndexPolicy(), logKeep: LogRetention = LogRetention()) throws(RagError) {
        self.partition = partition
        self.dimension = dimension
        self.logKeep = logKeep
        vectorPolicy = vectorIndex
        store = try PartitionStore(path: path, synchronous: synchronous)
        applied = try store.applied()
        let graphPath = path + "-hnsw", imagePath = path + "-image"
        self.graphPath = graphPath
        self.imagePath = imagePath
        Self.removeUnfinishedFiles(graphPath)
        Self.removeUnfinishedFiles(imagePath)
        // Texts stay on disk: hits are scored without them, and the final ones are read (`texts`).
        // A graph that walks int8 codes keeps its floats in a mapped file beside the partition, which its image names.
        let backing = VectorBacking.keptFile(prefix: path + "-vectors-")
        let image = try? Data(contentsOf: URL(fileURLWithPath: imagePath), options: .alwaysMapped)
        let index: PartitionIndex
        var digest: UInt64 = 0, onDisk: ImageFiles?
        let started = ContinuousClock.now
        var refused = "it has no index image"
        let name = Self.logName(path)
        if let image, let opened = try Self.openImage(image, store: store, policy: vectorIndex, partition: partition,
                                                        dimension: dimension, backing: backing, refused: &refused) {
            index = opened.index
            // The image on disk, and whether it is this index as loaded (nothing reloaded or waiting).
            onDisk = ImageFiles(vectorFile: index.vectorFile,
                                generation: opened.reloaded == 0 && index.pendingGraphInserts == 0 ? opened.stamp.generation : nil)
            index.forEachDocument { id, hash in digest &+= Self.digestTerm(id, hash) }
            Self.report("\(name): read its index image, \(opened.reloaded) documents reloaded from SQLite; \(index.chunkCount) chunks in \(ContinuousClock.now - started)"
                        + (index.pendingGraphInserts > 0 ? "; \(index.pendingGraphInserts) chunks to link into the graph" : ""))
        } else {
            // No image, or one too old or damaged: every chunk from SQLite. A
            // graph saved with the image (or, from an older version, alone) is
            // adopted: chunks it holds are not inserted again.
            let savedGraph = image.flatMap { PartitionIndex.imageGraph($0, dimension: dimension) }
                ?? FileManager.default.contents(atPath: graphPath)
            let kind = try Self.initialKind(vectorIndex, store: store, hasSavedGraph: savedGraph != nil)
            index = PartitionIndex(dimension: dimension, partition: partition, kind: kind, keepsTexts: false, vectorBacking: backing)
            if case .hnsw = kind, let savedGraph { _ = index.adoptGraph(savedGraph) }
            try store.loadAll { doc in
                guard doc.embeddings.allSatisfy({ $0.count == dimension }) else {
                    throw RagError(.failedPrecondition, "\(path): stored vectors do not have dimension \(dimension)")
                }
                index.upsert(doc)
                digest &+= Self.digestTerm(doc.id, doc.contentHash)
            }
            index.finishGraphAdoption()
            // A refused image is never of use again; one of this file's future
            // (a restored older copy) must not be taken once writes catch up with it.
            if image != nil { unlink(imagePath) }
            Self.report("\(name): \(refused): \(index.chunkCount) chunks loaded from SQLite in \(ContinuousClock.now - started)")
        }
        // Compaction runs in the background (`startGraphBuildIfDue`), not inside a write.
        index.compactsOnRemove = false
        // Kept vector files nothing names any more (an older graph's, a build a stop dropped).
        Self.removeVectorFiles(of: path, keeping: [index.vectorFile].compactMap { $0 })
        if let onDisk { imageFiles.withLock { $0 = onDisk } }
        self.index = index
        self.digest = digest
        publish()
        startGraphBuildIfDue()
        if index.pendingGraphInserts > 0 { Task { await self.linkPending() } }
    }

    /// Chunks searched now.
    /// Without the lock: read on every query (`Coordinator.runsInLine`), which
    /// must not wait while a write holds the index.
    public nonisolated var chunkCount: Int { published.withLock { $0.chunks } }

    /// The vector index searched now (`exact`, `int8`, `hnsw`).
    public nonisolated var indexName: String { published.withLock { $0.index } }

    /// The index's size and kind as of the last change, set under the write
    /// lock (`changingIndex`), read without it.
    nonisolated let published = Mutex<(chunks: Int, index: String)>((0, ""))

    /// `body` under the index's write lock; then publishes its size and kind.
    nonisolated func changingIndex<T>(_ body: () throws -> T) rethrows -> T {
        try lock.write {
            defer { publish() }
            return try body()
        }
    }

    private nonisolated func publish() { published.withLock { $0 = (index.chunkCount, index.kind.name) } }

    /// Where a version before index images saved the HNSW graph (`<partition file>-hnsw`): read when no image is there.
    nonisolated let graphPath: String
    /// Where the index image is saved (`<partition file>-image`, see `LocalShard+Image.swift`).
    nonisolated let imagePath: String

    public nonisolated func keywordStats(terms: [String]) async throws -> KeywordStats {
        try await readingIndex { index.keywordStats(terms) }
    }

    public nonisolated func search(_ request: ShardSearchRequest) async throws -> ShardSearchResult {
        try await readingIndex { try unlockedSearch(request) }
    }

    /// `body` under the index's read lock.
    nonisolated func readingIndex<T: Sendable>(_ body: () throws -> T) async throws -> T {
        try await withoutWaitingOnThePool(attempt: { try lock.tryRead(body) }, wait: { try lock.read(body) })
    }

    public nonisolated func texts(_ chunks: [ChunkKey: UInt64]) async throws -> [ChunkKey: String] {
        try await withoutWaitingOnThePool(attempt: { try store.textsIfFree(chunks) }, wait: { try store.texts(chunks) })
    }

    /// `attempt` (nil when it would have to wait for a lock) on the calling
    /// thread; when it cannot go at once, `wait` on `waitingThreads`. A write
    /// swapping a large batch into a graph holds the index lock for a while;
    /// readers waiting for it on the cooperative threads would stop every
    /// other call of the process.
    private nonisolated func withoutWaitingOnThePool<T: Sendable>(attempt: () throws -> T?, wait: () throws -> T) async throws -> T {
        if let result = try attempt() { return result }
        return try await withTaskExecutorPreference(waitingThreads) { try wait() }
    }

    private nonisolated func unlockedSearch(_ request: ShardSearchRequest) throws -> ShardSearchResult {
        var result = ShardSearchResult()
        if let v = request.vector {
            result.vectorHits = try index.vectorSearch(v, k: request.k, filter: request.filter)
        }
        if let stats = request.keywordStats {
            result.keywordHits = try index.keywordSearch(request.terms, stats: stats, k: request.k, filter: request.filter)
        }
        if request.includeVectors {
            result.vectorHits = index.attachVectors(result.vectorHits)
            result.keywordHits = index.attachVectors(result.keywordHits)
        }
        return result
    }

    public func write(upserts: [PreparedDocument], deletes: [String]) throws -> Set<String> {
        try check(upserts)
        receiving.withLock { r in
            guard r != nil else { return }
            for d in upserts { r!.touched[d.id] = .max }
            for id in deletes { r!.touched[id] = .max }
        }
        return try apply(upserts: upserts, deletes: deletes)
    }

    /// Checked before anything is stored: a write that does not fit this
    /// partition is an error for its sender, never a crash after the commit.
    func check(_ upserts: [PreparedDocument]) throws {
        for d in upserts {
            guard d.chunks.count == d.embeddings.count else {
                throw RagError.invalidArgument("document \(d.id.truncatedUTF8(maxBytes: 64).debugDescription) has \(d.chunks.count) chunks but \(d.embeddings.count) embeddings")
            }
            for v in d.embeddings {
                guard v.count == dimension else {
                    throw RagError.failedPrecondition("an embedding has \(v.count) dimensions; this partition stores \(dimension)")
                }
                guard v.allSatisfy(\.isFinite) else { throw RagError.invalidArgument("an embedding holds a value that is not finite") }
            }
        }
    }

    private func apply(upserts: [PreparedDocument], deletes: [String], entry: LogEntry? = nil) throws -> Set<String> {
        let touched = Set(deletes).union(upserts.map(\.id))
        // The index keeps no texts: the replaced chunks' are read before the
        // commit replaces them (their terms say which postings to drop).
        var old = try store.chunkTexts(touched.filter { index.contains($0) })
        let deleted = try store.write(upserts: upserts, deletes: deletes, entry: entry, keep: logKeep)
        if let entry { applied = (entry.seq, entry.version) }
        var digest = self.digest
        changingIndex {
            for id in touched { if let h = index.contentHash(of: id) { digest &-= Self.digestTerm(id, h) } }
            for id in deletes { index.remove(id, chunks: old.removeValue(forKey: id)) }
            for doc in upserts {
                index.upsert(doc, replacing: old[doc.id])
                old[doc.id] = doc.chunks
            }
            for id in touched { if let h = index.contentHash(of: id) { digest &+= Self.digestTerm(id, h) } }
        }
        self.digest = digest
        changesSinceSave += upserts.reduce(0) { $0 + $1.chunks.count } + deletes.count
        startGraphBuildIfDue()
        saveImageIfDue()
        return deleted
    }

    /// One document's share of the partition digest (a sum, so order never matters).
    static func digestTerm(_ id: String, _ contentHash: UInt64) -> UInt64 {
        let h = StableHash.fnv1a(id) ^ contentHash &* 0x9E37_79B9_7F4A_7C15
        return h ^ (h >> 29)
    }

    /// Applies copies from a move's source, except documents written through
    /// the cluster since the session began (those are newer than any copy).
    /// `deletes`: ids the source no longer has. Atomic with `write`: both run
    /// on this actor without suspending.
    public func receive(session: String, upserts: [PreparedDocument], deletes: [String]) throws -> (applied: Int, skipped: Int) {
        guard let touched = receiving.withLock({ $0?.session == session ? $0!.touched : nil }) else {
            throw RagError(.aborted, "receive session \(session) is not open on this node")
        }
        let ups = upserts.filter { touched[$0.id] == nil }
        let dels = deletes.filter { touched[$0] == nil }
        for d in ups where d.chunks.count != d.embeddings.count || d.embeddings.contains(where: { $0.count != dimension }) {
            throw RagError.invalidArgument("copied document \(d.id.truncatedUTF8(maxBytes: 64).debugDescription) does not fit this partition")
        }
        _ = try apply(upserts: ups, deletes: dels)
        return (ups.count + dels.count, upserts.count + deletes.count - ups.count - dels.count)
    }

    // MARK: replication

    /// The primary's side: gives the write the next sequence number, logs it
    /// and applies it in one transaction. `version`: the placement version it
    /// was routed by (never below the last entry's: an older primary's write
    /// would fork the log).
    public func sequence(upserts: [PreparedDocument], deletes: [String], version: UInt64, payload: Data) throws -> (seq: UInt64, deleted: Set<String>) {
        try check(upserts)
        guard version >= applied.version else {
            throw RagError(.aborted, "\(Placement.staleMarker): entry \(applied.seq) here was ordered at version \(applied.version), after \(version)")
        }
        let entry = LogEntry(seq: applied.seq + 1, version: version, payload: payload)
        return (entry.seq, try apply(upserts: upserts, deletes: deletes, entry: entry))
    }

    /// A replica's side: applies the primary's entry `entry` if it is the next
    /// one. An entry already applied is acknowledged again (a retry, or a
    /// catch-up that raced a writer); one that skips ahead is refused with the
    /// sequence applied here, so the sender can send what is missing first;
    /// one that contradicts what was applied at that number is refused as divergent.
    /// While a move copies into this partition, entries are applied like
    /// ordinary writes (the copy's log replay orders them afterwards).
    public func apply(entry: LogEntry, upserts: [PreparedDocument], deletes: [String]) throws -> Set<String> {
        try check(upserts)
        if receiving.withLock({ $0 != nil }) {
            guard entry.seq > applied.seq else { return [] }
            // Per document, only what is newer than the last entry applied to it.
            let (ups, dels) = receiving.withLock { r -> ([PreparedDocument], [String]) in
                let touched = r!.touched
                let out = (upserts.filter { (touched[$0.id] ?? 0) < entry.seq }, deletes.filter { (touched[$0] ?? 0) < entry.seq })
                for d in out.0 { r!.touched[d.id] = entry.seq }
                for id in out.1 { r!.touched[id] = entry.seq }
                return out
            }
            return try apply(upserts: ups, deletes: dels)
        }
        if entry.seq <= applied.seq {
            let have = entry.seq == applied.seq ? applied.version : try store.version(of: entry.seq)
            // Not in the log any more: below a copy's base or long truncated, so covered.
            guard let have, have != entry.version else { return [] }
            throw Replication.diverged(seq: entry.seq, here: have, entry: entry.version)
        }
        guard entry.seq == applied.seq + 1 else { throw Replication.gap(applied: applied.seq, entry: entry.seq) }
        guard entry.version >= applied.version else { throw Replication.diverged(seq: entry.seq, here: applied.version, entry: entry.version) }
        return try apply(upserts: upserts, deletes: deletes, entry: entry)
    }

    /// Log entries after `seq` (up to ~`maxBytes`), and whether some are gone.
    public func log(after seq: UInt64, maxBytes: Int) throws -> (entries: [LogEntry], truncated: Bool, head: (seq: UInt64, version: UInt64)) {
        let head = applied
        guard seq < head.seq else { return ([], false, head) }
        let entries = try store.entries(after: seq, maxBytes: maxBytes)
        return (entries, entries.first?.seq != seq + 1, head)
    }

    /// Sets where this copy's log continues (a copy of the source after `seq` is being made).
    public func setBase(seq: UInt64, version: UInt64) throws {
        try store.setApplied(seq: seq, version: version)
        applied = (seq, version)
    }

    /// What replicas compare: the last entry applied, the oldest logged, and a
    /// hash of every document id and content hash, in any order.
    public func replicationState() throws -> ReplicaState {
        return ReplicaState(seq: applied.seq, version: applied.version, firstLogged: try store.firstLogged(), digest: digest,
                            documents: index.documentCount, chunks: index.chunkCount)
    }

    public func contentHashes(_ ids: [String]) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for id in ids { if let h = index.contentHash(of: id) { out[id] = h } }
        return out
    }

    public func counts() -> ShardCounts {
        ShardCounts(partition: partition, documents: index.documentCount, chunks: index.chunkCount, index: indexName)
    }

    public func documentIDs() -> [String] { index.documentIDs }

    /// Stored documents with their kept source texts, read from disk (on the
    /// actor, so they are what the index holds), for copies to other replicas.
    public func stored(_ ids: [String]) throws -> [PreparedDocument] {
        try store.documents(ids)
    }

    /// Saves the index image beside the file (written whole, then renamed
    /// into place), so the next start reads it instead of rebuilding; then
    /// closes the file.
    public func close() {
        closing.store(true, ordering: .relaxed)
        // Nothing written since the image on disk: it holds this index already.
        if imageFiles.withLock({ $0.generation }) != stamp.generation {
            Self.imageSaves.wait()
            if let image = index.image(stamp: stamp) { writeImage(image, stamp: stamp) }
            Self.imageSaves.signal()
        }
        // What the image names stays; a graph being built is dropped with its file.
        Self.removeVectorFiles(of: store.path, keeping: [imageFiles.withLock { $0.vectorFile }].compactMap { $0 })
        storeOpen.withLock { open in
            open = false
            try? store.close()
        }
    }
}
