import RagCore
import RagStore

/// Storages that reindex jobs build beside a collection's current one.
extension CollectionRegistry {
    /// The storage being built for `name`, if a reindex runs (or ran before a restart).
    public func build(_ name: String) -> CollectionHandle? {
        builds[name]
    }

    public nonisolated var isSharedCatalog: Bool { catalog.isShared }

    /// How a build's storage is described to the shards: the collection's name,
    /// partitions and generation with the build's storage, embedder and chunking.
    static func target(_ info: CollectionInfo, _ b: StorageBuild) -> CollectionInfo {
        CollectionInfo(name: info.name, embedder: b.embedder, dimension: b.dimension, partitions: info.partitions, createdAt: info.createdAt,
                       generation: info.generation, storage: b.storage, chunkSize: b.chunkSize, chunkOverlap: b.chunkOverlap, index: b.index)
    }

    /// Records the build in the catalog (so writes are mirrored into it from now
    /// on, across restarts) and opens its storage. The same job resuming gets the
    /// storage it started; another job is refused while one builds.
    public func beginBuild(_ name: String, _ b: StorageBuild) async throws(RagError) -> CollectionHandle {
        guard var current = collections[name] else { throw .notFound("collection \(name.debugDescription) does not exist") }
        if let existing = current.info.building {
            guard existing.job == b.job, let handle = builds[name] else {
                throw .failedPrecondition("collection \(name) is being reindexed by job \(existing.job); wait for it or cancel it")
            }
            return handle
        }
        let handle = try Self.open(Self.target(current.info, b), makeShard: makeShard)
        try await catalog.setBuilding(name, b)
        current.info.building = b
        collections[name] = current
        builds[name] = handle
        return handle
    }

    /// Switches the collection to its built storage in one catalog update;
    /// returns the storage it leaves (to close and delete once queries are done with it).
    public func finishBuild(_ name: String) async throws(RagError) -> CollectionHandle {
        guard let old = collections[name], let b = old.info.building, var built = builds[name] else {
            throw .failedPrecondition("collection \(name.debugDescription) has no reindex to finish")
        }
        try await catalog.switchStorage(name, to: b)
        built.info.generation = old.info.generation + 1
        collections[name] = built
        builds[name] = nil
        return old
    }

    /// Registers a collection whose storage is already on disk (a restored
    /// snapshot); ALREADY_EXISTS if the name was taken meanwhile.
    public func create(_ info: CollectionInfo) async throws(RagError) -> CollectionHandle {
        guard collections[info.name] == nil else { throw RagError(.alreadyExists, "collection \(info.name) was created meanwhile; restore over it") }
        let handle = try Self.open(info, makeShard: makeShard)
        collections[info.name] = handle
        do { _ = try await catalog.create(info) } catch {
            collections[info.name] = nil
            for s in handle.shards { await s.close() }
            throw error
        }
        return handle
    }

    /// Forgets a build (its job failed or was cancelled); returns its storage to delete.
    public func abandonBuild(_ name: String) async throws(RagError) -> CollectionHandle? {
        guard var current = collections[name], current.info.building != nil else { return nil }
        try await catalog.setBuilding(name, nil)
        current.info.building = nil
        collections[name] = current
        defer { builds[name] = nil }
        return builds[name]
    }
}
