import Foundation
import RagCore
import RagEngine
import RagStore
import Synchronization

/// Index images (`PartitionIndex+Image`): saved whole at close and, in the
/// background, every `saveEvery` chunks written or a quarter of the partition
/// (`saveDue`), so a start reads the image and reloads only the documents
/// written since (the partition file's journal names them) instead of every chunk.
extension LocalShard {
    /// One image is serialised and written at a time in the whole process: each
    /// holds a copy of its partition's index until it is on disk.
    static let imageSaves = DispatchSemaphore(value: 1)

    /// What the index holds now: the partition file's last committed write.
    /// On the actor (or in init), where no write runs.
    var stamp: ImageStamp {
        let g = store.generation
        return ImageStamp(lineage: g.lineage, generation: g.number)
    }

    /// The index read from `image` and brought up to date from SQLite; nil
    /// when the image is damaged, of another kind or dimension, or older than
    /// the journal reaches (the caller then loads every chunk).
    static func openImage(_ image: Data, store: PartitionStore, policy: VectorIndexPolicy, partition: Int, dimension: Int,
                          backing: VectorBacking, refused: inout String) throws(RagError) -> (index: PartitionIndex, reloaded: Int, stamp: ImageStamp)? {
        // `auto` may have switched to a graph, or not yet: either is its own.
        let kinds: [VectorIndexKind] = policy.choice == .auto ? [.flat, .hnsw(policy.hnsw)] : [policy.kind(chunks: 0)]
        guard let (index, stamp) = PartitionIndex.decodeImage(image, partition: partition, dimension: dimension, kinds: kinds, vectorBacking: backing) else {
            refused = "its index image is damaged or of another index kind"
            return nil
        }
        guard let changed = try store.changed(since: stamp.generation, lineage: stamp.lineage) else {
            refused = "its index image (generation \(stamp.generation)) is older than the journal reaches, or of another file"
            return nil
        }
        // Compaction now would put the graph in a new vector file while the image
        // on disk names this one: it runs in the background instead (`startGraphBuildIfDue`).
        index.compactsOnRemove = false
        index.dropStale(changed)
        // Reloaded chunks are searched exactly until linked (`linkPending`), so
        // the start does not wait for up to a quarter of a graph to be linked again.
        index.defersGraphInserts = true
        defer { index.defersGraphInserts = false }
        let ids = changed.sorted()
        for start in stride(from: 0, to: ids.count, by: 256) {
            for doc in try store.documents(Array(ids[start..<min(start + 256, ids.count)])) {
                guard doc.embeddings.allSatisfy({ $0.count == dimension }) else {
                    throw RagError(.failedPrecondition, "\(store.path): stored vectors do not have dimension \(dimension)")
                }
                index.upsert(doc)
            }
        }
        return (index, changed.count, stamp)
    }

    /// Links the chunks a start reloaded into the graph, a batch at a time
    /// under the write lock, between the actor's other work. Batches are small
    /// (a few ms of linking each): a search waits for one at most, and a hybrid
    /// query takes each partition's lock twice. 1M chunks, 4 partitions linking
    /// 25k chunks each on 2 cores: hybrid p50 while linking 104–142 ms with 64 a
    /// batch, 48 ms with 4 (vector 28 ms; 1.2 ms once linked).
    func linkPending() async {
        let started = ContinuousClock.now, waiting = index.pendingGraphInserts
        while !closing.load(ordering: .relaxed), changingIndex({ index.insertPending(limit: 4) }) > 0 {
            await Task.yield()
        }
        if index.pendingGraphInserts == 0 {
            Self.report("\(Self.logName(store.path)): linked \(waiting) chunks into the graph in \(ContinuousClock.now - started)")
        }
    }

    /// How each partition opened (from its image or from every chunk), for the
    /// server's log.
    public static let openReport = Mutex<(@Sendable (String) -> Void)?>(nil)

    static func report(_ what: String) {
        let report = openReport.withLock { $0 }
        report?(what)
    }

    /// Serialises the index (on the actor: no write runs meanwhile; searches
    /// may) when a save is due, and writes it on a thread of its own.
    func saveImageIfDue() {
        let size = index.graphNodes?.nodes ?? index.chunkCount
        guard vectorPolicy.saveDue(changes: changesSinceSave, nodes: size), !closing.load(ordering: .relaxed),
              !imageFiles.withLock({ $0.saving || $0.waiting }) else { return }
        guard Self.imageSaves.wait(timeout: .now()) == .success else {
            // Another partition is saving: try again once it is done, not only at the next write.
            imageFiles.withLock { $0.waiting = true }
            Self.inBackground("ragd-image-wait-p\(partition)") { [self] in
                Self.imageSaves.wait()
                Self.imageSaves.signal()
                imageFiles.withLock { $0.waiting = false }
                Task { await self.saveImageIfDue() }
            }
            return
        }
        let stamp = self.stamp
        guard let image = index.image(stamp: stamp) else {
            Self.imageSaves.signal()
            return
        }
        changesSinceSave = 0
        imageFiles.withLock { $0.saving = true }
        let handoff = ImageHandoff(image: image)
        Self.inBackground("ragd-image-p\(partition)") { [self] in
            writeImage(handoff.image, stamp: stamp)
            imageFiles.withLock { $0.saving = false }
            Self.imageSaves.signal()
        }
    }

    /// Writes `parts` to a file of its own, flushes it, and renames it into
    /// place unless a newer save (or the close) renamed one already; then the
    /// journal before it is no longer needed.
    nonisolated func writeImage(_ image: IndexImage, stamp: ImageStamp) {
        defer { if image.vectorDescriptor >= 0 { Glibc.close(image.vectorDescriptor) } }
        let n = imageFiles.withLock { s -> Int in s.started += 1; return s.started }
        let temporary = imagePath + ".tmp\(n)"
        // The rows the image names are on disk before the image is.
        if image.vectorDescriptor >= 0, fdatasync(image.vectorDescriptor) != 0 { return }
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let h = FileHandle(forWritingAtPath: temporary) else { return }
        do {
            for part in image.parts { try h.write(contentsOf: part) }
            try h.synchronize()
            try h.close()
        } catch {
            // A full disk, say: the last image stays, and the journal with it.
            try? h.close()
            unlink(temporary)
            return
        }
        let retired = imageFiles.withLock { s -> [String]? in
            guard n > s.renamed, rename(temporary, imagePath) == 0 else { unlink(temporary); return nil }
            s.renamed = n
            s.vectorFile = image.vectorFile
            s.generation = stamp.generation
            // Files of graphs replaced since: no image names them now.
            let gone = s.retired.filter { $0 != image.vectorFile }
            s.retired.subtract(gone)
            return Array(gone)
        }
        guard let retired else { return }
        Self.syncDirectory(of: imagePath)
        for f in retired { unlink(f) }
        // Superseded: a graph file an older version saved alone.
        unlink(graphPath)
        storeOpen.withLock { open in
            if open { try? store.trimJournal(through: stamp.generation) }
        }
    }

    /// Makes a rename in `path`'s directory durable. Without it a power loss
    /// could bring back the older image after the journal was cut past it;
    /// that image would then be refused and every chunk loaded (slow, not wrong).
    static func syncDirectory(of path: String) {
        let fd = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        Glibc.close(fd)
    }

    /// Removes the partition's kept vector files (`<partition file>-vectors-*`) but `keeping`.
    static func removeVectorFiles(of partitionPath: String, keeping: [String]) {
        removeFiles(beside: partitionPath, suffix: "-vectors-", keeping: Set(keeping.map { URL(fileURLWithPath: $0).lastPathComponent }))
    }

    /// Files a kill -9 left half written (`<file>.tmpN`).
    static func removeUnfinishedFiles(_ path: String) { removeFiles(beside: path, suffix: ".tmp") }

    /// Removes the files named `<path's name><suffix>…` in `path`'s directory, but those named in `keeping`.
    private static func removeFiles(beside path: String, suffix: String, keeping: Set<String> = []) {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path, prefix = url.lastPathComponent + suffix
        for f in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where f.hasPrefix(prefix) && !keeping.contains(f) {
            unlink(dir + "/" + f)
        }
    }

    /// A partition as its log lines name it: `<collection>/pNNN.sqlite`.
    static func logName(_ path: String) -> String { URL(fileURLWithPath: path).pathComponents.suffix(2).joined(separator: "/") }
}

/// The image files of a partition: saves are numbered so that an older one
/// never replaces a newer one; the vector file the last image names; the
/// vector files of graphs replaced since (removed once an image no longer names them).
struct ImageFiles {
    var started = 0
    var renamed = 0
    var saving = false
    /// A thread waits for another partition's save to end, to save this one.
    var waiting = false
    var vectorFile: String?
    /// The generation of the image on disk, when it is known to hold the index as it was then.
    var generation: UInt64?
    var retired = Set<String>()
}

/// An image passed to the thread that writes it (its descriptor is closed there).
struct ImageHandoff: @unchecked Sendable {
    let image: IndexImage
}
