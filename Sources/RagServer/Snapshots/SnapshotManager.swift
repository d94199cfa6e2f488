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
    /// Storages and their retirement (single servers; nil on a coordinator, which restores nothing).
    let reindexer: Reindexer?
    let directory: String
    let logger: Logger
    /// The largest archive an upload may make.
    static let maxArchiveBytes: UInt64 = 64 << 30
    /// Longest part of a read or an upload.
    public static let maxPart = 4 << 20

    public init(coordinator: Coordinator, reindexer: Reindexer?, dataDirectory: String, logger: Logger) {
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

    /// Restores and uploads change this process's storages: single servers only.
    func requireLocal() throws(RagError) -> Reindexer {
        guard let reindexer, !registry.isSharedCatalog else {
            throw .failedPrecondition("snapshots are restored on single servers: download this one (ragctl snapshot download) and restore it on a server started without --role")
        }
        return reindexer
    }

    /// Takes a snapshot of `collection`: of this server's partitions, or on a
    /// coordinator, of one in-sync replica of each partition on the shard nodes.
    public func create(collection: String) async throws -> SnapshotManifest {
        try CollectionRegistry.validateName(collection)
        let handle = try await registry.get(collection)
        let shards = handle.shards.sorted { $0.partition < $1.partition }
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
        let copies = try await coordinator.exclusively(collection) { () async throws -> [(Task<PartitionCopy, any Error>, String?)] in
            try await self.pin(shards, into: staging, executor: executor)
        }
        // The archive is written on those threads too: reading, hashing and
        // writing hundreds of megabytes must not hold a cooperative thread.
        var manifest = try await withTaskExecutorPreference(executor) { () async throws -> SnapshotManifest in
            var files: [SnapshotManifest.File] = []
            let writer = try TarArchive.Writer(path: "\(staging)/archive")
            for (shard, (task, replica)) in zip(shards, copies) {
                let copy = try await task.value
                let file = Self.fileName(shard.partition)
                let (sha, bytes) = try writer.add(name: file, file: "\(staging)/\(file)")
                files.append(.init(name: file, partition: shard.partition, bytes: bytes, sha256: sha, documents: copy.documents,
                                   chunks: copy.chunks, seq: copy.seq, replica: replica))
            }
            let manifest = SnapshotManifest(collection: collection, embedder: handle.info.embedder, dimension: handle.info.dimension,
                                            partitions: handle.info.partitions, chunkSize: handle.info.chunkSize, chunkOverlap: handle.info.chunkOverlap,
                                            createdAt: Date().timeIntervalSince1970, files: files,
                                            index: handle.info.index.isEmpty ? nil : handle.info.index)
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

    /// Starts a copy of every partition and returns once all are pinned: the
    /// copy tasks, with the shard node each is read from (nil: this process).
    func pin(_ shards: [any Shard], into staging: String, executor: ThreadPoolExecutor) async throws -> [(Task<PartitionCopy, any Error>, String?)] {
        func path(_ shard: any Shard) -> String { "\(staging)/\(Self.fileName(shard.partition))" }
        let locals = shards.compactMap { $0 as? LocalShard }
        if locals.count == shards.count {
            let latch = Latch(locals.count)
            let tasks = locals.map { shard in
                let target = path(shard)
                return Task(executorPreference: executor) { try shard.store.backup(to: target) { latch.arrive() } }
            }
            await latch.wait()
            return tasks.map { ($0, nil) }
        }
        let remotes = shards.compactMap { $0 as? RemoteShard }
        guard remotes.count == shards.count else { throw RagError(.internal, "a collection's partitions are neither all local nor all remote") }
        // Each node answers once its copy is pinned; all at once, so writes wait for the slowest only.
        var backups: [Int: RemoteBackup] = [:]
        var failure: (any Error)?
        await withTaskGroup(of: Result<(Int, RemoteBackup), any Error>.self) { group in
            for shard in remotes {
                group.addTask {
                    do { return .success((shard.partition, try await shard.startBackup())) } catch { return .failure(error) }
                }
            }
            // Every answer is collected, so the copies that did start can be released.
            for await result in group {
                switch result {
                case .success(let (p, backup)): backups[p] = backup
                case .failure(let e): failure = failure ?? e
                }
            }
        }
        if let failure {
            for backup in backups.values { backup.release() }
            throw failure
        }
        return remotes.map { shard in
            let backup = backups[shard.partition]!
            let target = path(shard)
            return (Task(executorPreference: executor) { try await backup.download(to: target) }, backup.replica.address)
        }
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
        return try Self.readPart(of: archivePath(name), offset: offset, length: length, what: "snapshot \(name.debugDescription)")
    }

    /// Up to `length` bytes (at most `maxPart`) of the file at `path` from
    /// `offset`, and its size: a part of an archive or of a partition copy.
    static func readPart(of path: String, offset: UInt64, length: Int, what: String) throws(RagError) -> (Data, UInt64) {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .notFound("\(what) does not exist") }
        defer { try? handle.close() }
        do {
            let total = try handle.seekToEnd()
            guard offset <= total else { throw RagError(.outOfRange, "offset \(offset) is past the end of \(what) (\(total) bytes)") }
            try handle.seek(toOffset: offset)
            return (try handle.read(upToCount: max(0, min(length, maxPart))) ?? Data(), total)
        } catch let e as RagError { throw e } catch { throw RagError(.internal, "cannot read \(what)") }
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
