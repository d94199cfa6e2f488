import Crypto
import Foundation
import RagCore
import RagEngine
import RagStore

/// Checking archives, uploads and restores.
extension SnapshotManager {
    /// Reads and checks an archive's manifest (against its own SHA-256).
    func manifest(of path: String) throws(RagError) -> (SnapshotManifest, [TarArchive.Entry]) {
        let entries = try TarArchive.entries(of: path)
        guard let m = entries.first(where: { $0.name == "manifest.json" }), let s = entries.first(where: { $0.name == "manifest.json.sha256" }) else {
            throw TarArchive.damaged("it has no manifest.json and manifest.json.sha256")
        }
        let json = try TarArchive.read(m, from: path, limit: 16 << 20)
        let sum = String(decoding: try TarArchive.read(s, from: path, limit: 64), as: UTF8.self)
        guard TarArchive.hex(SHA256.hash(data: json)) == sum else { throw TarArchive.damaged("manifest.json failed its checksum") }
        let manifest = try SnapshotManifest.decode(json)
        for f in manifest.files {
            guard let e = entries.first(where: { $0.name == f.name }), e.size == f.bytes else { throw TarArchive.damaged("\(f.name) is missing or has the wrong size") }
        }
        return (manifest, entries)
    }

    /// Extracts every partition file into `dir`, checking each against the
    /// manifest; DATA_LOSS names the first that fails.
    func extract(_ path: String, _ manifest: SnapshotManifest, _ entries: [TarArchive.Entry], into dir: String) throws(RagError) {
        for f in manifest.files {
            let e = entries.first { $0.name == f.name }!
            let sha = try TarArchive.extract(e, from: path, to: "\(dir)/\(f.name)")
            guard sha == f.sha256 else { throw TarArchive.damaged("\(f.name) failed its checksum") }
        }
    }

    /// Appends a part of an archive being uploaded; `last` checks it and keeps it as snapshot `name`.
    public func upload(name: String, offset: UInt64, data: Data, last: Bool) throws(RagError) -> SnapshotManifest? {
        _ = try requireLocal()
        try Self.validateName(name)
        guard data.count <= Self.maxPart else { throw .invalidArgument("an upload part holds at most \(Self.maxPart) bytes") }
        let partial = "\(directory)/.upload-\(name)"
        let fm = FileManager.default
        if offset == 0 {
            guard !fm.fileExists(atPath: archivePath(name)) else { throw RagError(.alreadyExists, "snapshot \(name.debugDescription) already exists") }
            try? fm.removeItem(atPath: partial)
            fm.createFile(atPath: partial, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: partial) else { throw .failedPrecondition("no upload of \(name.debugDescription) is under way: start at offset 0") }
        do {
            let size = try handle.seekToEnd()
            guard size == offset else { try handle.close(); throw RagError(.failedPrecondition, "upload of \(name) is at byte \(size), not \(offset)") }
            guard size + UInt64(data.count) <= Self.maxArchiveBytes else { try handle.close(); throw RagError(.resourceExhausted, "an archive holds at most \(Self.maxArchiveBytes) bytes") }
            try handle.write(contentsOf: data)
            if last { try handle.synchronize() }
            try handle.close()
        } catch let e as RagError { throw e } catch { throw RagError(.internal, "cannot store the upload of \(name)") }
        guard last else { return nil }
        // Every file is checked before the archive is kept.
        let check = "\(directory)/.check-\(UUID().uuidString)"
        defer { try? fm.removeItem(atPath: check) }
        do {
            var (manifest, entries) = try self.manifest(of: partial)
            try? fm.createDirectory(atPath: check, withIntermediateDirectories: true)
            try extract(partial, manifest, entries, into: check)
            try fm.moveItem(atPath: partial, toPath: archivePath(name))
            manifest.name = name
            manifest.bytes = Int(offset) + data.count
            try JSONEncoder().encode(manifest).write(to: URL(fileURLWithPath: infoPath(name)), options: .atomic)
            return manifest
        } catch {
            try? fm.removeItem(atPath: partial)
            throw RagError(from: error)
        }
    }

    /// Restores snapshot `name` into `collection` (default: the one it was taken
    /// of), as a new collection or over an existing one. Nothing changes unless
    /// every file passes its checksum; over an existing collection, the switch
    /// is one catalog update, as a reindex's.
    public func restore(name: String, into collection: String?) async throws -> (collection: String, documents: Int, chunks: Int) {
        let reindexer = try requireLocal()
        try Self.validateName(name)
        let path = archivePath(name)
        guard FileManager.default.fileExists(atPath: path) else { throw RagError.notFound("snapshot \(name.debugDescription) does not exist") }
        let (manifest, entries) = try self.manifest(of: path)
        let target = collection.flatMap { $0.isEmpty ? nil : $0 } ?? manifest.collection
        try CollectionRegistry.validateName(target)
        let existing = try? await registry.get(target)
        if let b = existing?.info.building {
            throw RagError.failedPrecondition("collection \(target) is being reindexed by job \(b.job); restore after it")
        }
        let partitions = existing?.info.partitions ?? manifest.partitions
        let storage = Reindexer.nextStorage(name: target, current: existing?.info.storage ?? target)
        let storageDir = "\(reindexer.dataDirectory)/collections/\(storage)"
        let staging = "\(directory)/.restore-\(UUID().uuidString)"
        let fm = FileManager.default
        // Kept from `Reindexer.recover` (it deletes storages no collection uses) until installed.
        reindexer.retiring.withLock { _ = $0.insert(storage) }
        defer {
            reindexer.retiring.withLock { _ = $0.remove(storage) }
            try? fm.removeItem(atPath: staging)
        }
        var installed = false
        defer { if !installed { try? fm.removeItem(atPath: storageDir) } }
        try? fm.removeItem(atPath: storageDir)
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
        // Reading, hashing and copying files blocks: on a thread of its own.
        let executor = ThreadPoolExecutor(name: "restore", threads: 1)
        defer { executor.shutdown() }
        try await withTaskExecutorPreference(executor) {
            try self.extract(path, manifest, entries, into: staging)
            if target == manifest.collection && partitions == manifest.partitions {
                try fm.createDirectory(atPath: storageDir, withIntermediateDirectories: true)
                for f in manifest.files { try fm.moveItem(atPath: "\(staging)/\(f.name)", toPath: "\(storageDir)/\(f.name)") }
            } else {
                // Documents are placed by collection name and partition count: under
                // another name or count they move to the partitions they belong to.
                try await self.replace(manifest, from: staging, into: storageDir, collection: target, partitions: partitions)
            }
        }
        let build = StorageBuild(storage: storage, embedder: manifest.embedder, dimension: manifest.dimension,
                                 chunkSize: manifest.chunkSize, chunkOverlap: manifest.chunkOverlap, job: "restore:\(name)",
                                 index: manifest.index ?? "")
        let handle: CollectionHandle
        if existing != nil {
            let (new, old) = try await coordinator.exclusively(target) { () async throws -> (CollectionHandle, CollectionHandle) in
                _ = try await registry.beginBuild(target, build)
                let old = try await registry.finishBuild(target)
                try await coordinator.recordWrite(target)
                return (try await registry.get(target), old)
            }
            handle = new
            reindexer.retire(old)
        } else {
            handle = try await registry.create(CollectionInfo(name: target, embedder: manifest.embedder, dimension: manifest.dimension, partitions: partitions,
                                                              storage: storage, chunkSize: manifest.chunkSize, chunkOverlap: manifest.chunkOverlap,
                                                              index: manifest.index ?? ""))
        }
        installed = true
        var documents = 0, chunks = 0
        for s in handle.shards {
            let c = try await s.counts()
            documents += c.documents
            chunks += c.chunks
        }
        logger.info("restored snapshot \(name) into \(target): \(documents) documents, \(chunks) chunks")
        return (target, documents, chunks)
    }

    /// Copies a snapshot's documents into `partitions` new partitions, each where
    /// `collection` places it.
    func replace(_ m: SnapshotManifest, from staging: String, into dir: String, collection: String, partitions: Int) async throws {
        let configuration = coordinator.configuration
        var targets: [LocalShard] = []
        // Written and closed here, then opened by the registry with the
        // collection's index: an exact index builds no graph meanwhile.
        for p in 0..<partitions {
            targets.append(try LocalShard(path: "\(dir)/\(Self.fileName(p))", partition: p, dimension: m.dimension,
                                          synchronous: configuration.synchronous))
        }
        for f in m.files {
            let source = try LocalShard(path: "\(staging)/\(f.name)", partition: f.partition, dimension: m.dimension, synchronous: .normal)
            let ids = await source.documentIDs().sorted()
            for start in stride(from: 0, to: ids.count, by: 256) {
                let docs = try await source.stored(Array(ids[start..<min(start + 256, ids.count)]))
                for (p, group) in Dictionary(grouping: docs, by: { StableHash.partition(collection: collection, documentID: $0.id, count: partitions) }) {
                    _ = try await targets[p].write(upserts: group, deletes: [])
                }
            }
            await source.close()
        }
        for t in targets { await t.close() }
    }
}
