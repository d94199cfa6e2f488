import Crypto
import Foundation
import Logging
import RagCore
import RagEngine
import RagStore
import Synchronization

/// Snapshots of collections on a single server, kept as tar archives under
/// `<data>/snapshots/` (`NAME.ragsnap`, with `NAME.json` beside it for listing).
///
/// A snapshot is taken online: with the collection's writes held off (its
/// gate, as a reindex step holds it), every partition opens a read
/// transaction; once all are open the writes go on, and each partition is
/// copied from its transaction with SQLite's backup API. So the archive holds
/// every partition at one point, and writes wait only for the transactions
/// to open, not for the copy.
public final class SnapshotManager: Sendable {
    let coordinator: Coordinator
    let reindexer: Reindexer
    let directory: String
    let logger: Logger
    /// The largest archive an upload may make.
    static let maxArchiveBytes: UInt64 = 64 << 30
    /// Longest part of a read or an upload.
    public static let maxPart = 4 << 20

    public init(coordinator: Coordinator, reindexer: Reindexer, dataDirectory: String, logger: Logger) {
        self.coordinator = coordinator
        self.reindexer = reindexer
        self.logger = logger
        directory = dataDirectory + "/snapshots"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Work a stop interrupted: half-made archives, uploads, extractions.
        for f in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where f.hasPrefix(".") {
            try? FileManager.default.removeItem(atPath: directory + "/" + f)
        }
    }

    var registry: CollectionRegistry { coordinator.registry }

    static func fileName(_ partition: Int) -> String { String(format: "p%03d.sqlite", partition) }

    /// Snapshot names: 1-128 of A-Z a-z 0-9 _ - . not starting with '.'.
    static func validateName(_ name: String) throws(RagError) {
        guard CollectionRegistry.isSafeName(name, maxBytes: 128) else { throw .invalidArgument("snapshot name \(name.truncatedUTF8(maxBytes: 64).debugDescription) must be 1-128 characters of A-Z a-z 0-9 _ - . and not start with '.'") }
    }

    func archivePath(_ name: String) -> String { "\(directory)/\(name).ragsnap" }
    func infoPath(_ name: String) -> String { "\(directory)/\(name).json" }

    func requireLocal() throws(RagError) {
        guard !registry.isSharedCatalog else { throw .failedPrecondition("snapshots run on single servers; this coordinator shares an etcd catalog") }
    }

    /// Takes a snapshot of `collection`.
    public func create(collection: String) async throws -> SnapshotManifest {
        try requireLocal()
        try CollectionRegistry.validateName(collection)
        let handle = try await registry.get(collection)
        let shards = try reindexer.local(handle)
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withYear, .withMonth, .withDay, .withTime])
            .replacingOccurrences(of: ":", with: "")
        let name = "\(collection)-\(stamp)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        let staging = "\(directory)/.create-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: staging) }

        // Every partition's read transaction opens while writes are held off;
        // the copies run after, each on a thread of its own (they block).
        let executor = ThreadPoolExecutor(name: "snapshot", threads: shards.count + 1)
        defer { executor.shutdown() }
        let latch = Latch(shards.count)
        let copies = try await coordinator.exclusively(collection) { () async -> [Task<PartitionCopy, any Error>] in
            let tasks = shards.map { shard in
                let path = "\(staging)/\(Self.fileName(shard.partition))"
                return Task(executorPreference: executor) { try shard.store.backup(to: path) { latch.arrive() } }
            }
            await latch.wait()
            return tasks
        }
        // The archive is written on those threads too: reading, hashing and
        // writing hundreds of megabytes must not hold a cooperative thread.
        var manifest = try await withTaskExecutorPreference(executor) { () async throws -> SnapshotManifest in
            var files: [SnapshotManifest.File] = []
            let writer = try TarArchive.Writer(path: "\(staging)/archive")
            for (shard, task) in zip(shards, copies) {
                let copy = try await task.value
                let file = Self.fileName(shard.partition)
                let (sha, bytes) = try writer.add(name: file, file: "\(staging)/\(file)")
                files.append(.init(name: file, partition: shard.partition, bytes: bytes, sha256: sha, documents: copy.documents, chunks: copy.chunks, seq: copy.seq))
            }
            let manifest = SnapshotManifest(collection: collection, embedder: handle.info.embedder, dimension: handle.info.dimension,
                                            partitions: handle.info.partitions, chunkSize: handle.info.chunkSize, chunkOverlap: handle.info.chunkOverlap,
                                            createdAt: Date().timeIntervalSince1970, files: files)
            let json = try JSONEncoder().encode(manifest)
            try writer.add(name: "manifest.json", data: json)
            try writer.add(name: "manifest.json.sha256", data: Data(TarArchive.hex(SHA256.hash(data: json)).utf8))
            try writer.finish()
            try FileManager.default.moveItem(atPath: "\(staging)/archive", toPath: self.archivePath(name))
            return manifest
        }
        manifest.name = name
        manifest.bytes = Int((try FileManager.default.attributesOfItem(atPath: archivePath(name))[.size] as? NSNumber)?.int64Value ?? 0)
        try JSONEncoder().encode(manifest).write(to: URL(fileURLWithPath: infoPath(name)), options: .atomic)
        logger.info("snapshot \(name) of \(collection): \(manifest.documents) documents, \(manifest.chunks) chunks, \(manifest.bytes) bytes")
        return manifest
    }

    /// The snapshots this server keeps, oldest first.
    public func list() -> [SnapshotManifest] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
        return names.compactMap { f in
            FileManager.default.contents(atPath: "\(directory)/\(f)").flatMap { try? JSONDecoder().decode(SnapshotManifest.self, from: $0) }
        }.filter { FileManager.default.fileExists(atPath: archivePath($0.name)) }.sorted { ($0.createdAt, $0.name) < ($1.createdAt, $1.name) }
    }

    public func delete(name: String) throws(RagError) {
        try Self.validateName(name)
        guard FileManager.default.fileExists(atPath: archivePath(name)) else { throw .notFound("snapshot \(name.debugDescription) does not exist") }
        try? FileManager.default.removeItem(atPath: infoPath(name))
        do { try FileManager.default.removeItem(atPath: archivePath(name)) } catch { throw RagError(.internal, "cannot delete snapshot \(name)") }
    }

    /// Up to `length` bytes of an archive from `offset`, and its size.
    public func read(name: String, offset: UInt64, length: Int) throws(RagError) -> (Data, UInt64) {
        try Self.validateName(name)
        guard let handle = FileHandle(forReadingAtPath: archivePath(name)) else { throw .notFound("snapshot \(name.debugDescription) does not exist") }
        defer { try? handle.close() }
        do {
            let total = try handle.seekToEnd()
            guard offset <= total else { throw RagError(.outOfRange, "offset \(offset) is past the end of snapshot \(name) (\(total) bytes)") }
            try handle.seek(toOffset: offset)
            return (try handle.read(upToCount: max(0, min(length, Self.maxPart))) ?? Data(), total)
        } catch let e as RagError { throw e } catch { throw RagError(.internal, "cannot read snapshot \(name)") }
    }
}

/// Counts arrivals; `wait` returns once all have arrived.
final class Latch: Sendable {
    private let state: Mutex<(left: Int, waiter: CheckedContinuation<Void, Never>?)>

    init(_ count: Int) { state = Mutex((count, nil)) }

    func arrive() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.left -= 1
            guard s.left == 0, let w = s.waiter else { return nil }
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    func wait() async {
        await withCheckedContinuation { c in
            let now = state.withLock { s -> Bool in
                if s.left <= 0 { return true }
                s.waiter = c
                return false
            }
            if now { c.resume() }
        }
    }
}
