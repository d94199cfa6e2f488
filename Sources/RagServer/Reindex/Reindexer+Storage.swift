import Foundation
import RagCore
import RagStore

/// Deleting storages a reindex left behind.
extension Reindexer {
    /// Closes and deletes a storage the collection switched away from, once the
    /// queries that began on it are done.
    func retire(_ old: CollectionHandle) {
        let grace = retireAfter
        retiring.withLock { _ = $0.insert(old.info.storage) }
        Task {
            try? await Task.sleep(for: grace)
            await self.delete(old)
            self.retiring.withLock { _ = $0.remove(old.info.storage) }
        }
    }

    /// Closes a storage's partitions and deletes its directory, unless the
    /// catalog refers to it again.
    func delete(_ handle: CollectionHandle) async {
        let storage = handle.info.storage
        guard await !referenced().contains(storage) else { return }
        for shard in handle.shards { await shard.close() }
        remove(storage)
    }

    /// Every storage the catalog points at, current or being built.
    func referenced() async -> Set<String> {
        var out = Set<String>()
        for c in await registry.all() {
            out.insert(c.info.storage)
            if let b = c.info.building { out.insert(b.storage) }
        }
        return out
    }

    func remove(_ storage: String) {
        guard (try? CollectionRegistry.validateStorage(storage)) != nil else { return }
        let dir = dataDirectory + "/collections/" + storage
        do {
            try FileManager.default.removeItem(atPath: dir)
            logger.info("deleted storage \(storage), which no collection uses since a reindex")
        } catch {
            logger.warning("cannot delete storage \(storage) left by a reindex: \(error.localizedDescription)")
        }
    }

    /// After a start or a reindex attempt: abandons builds whose job is over
    /// (failed, cancelled, gone) and deletes storages no collection uses that a
    /// reindex made (`<name>~r<n>`) or switched away from.
    func recover(jobState: (String) async -> String?) async {
        for c in await registry.all() {
            guard let b = c.info.building else { continue }
            let state = await jobState(b.job)
            // A server started with another embedder than the build's cannot go on with it: the job starts a new one.
            let embeddable = b.embedder == coordinator.embedder.id
            if embeddable, let state, state.isEmpty || ["staging", "queued", "running"].contains(state) { continue }  // "": the queue cannot say now
            do {
                if let handle = try await coordinator.exclusively(c.info.name, { try await registry.abandonBuild(c.info.name) }) {
                    let why = embeddable ? "job \(b.job) is \(state ?? "gone")" : "this server embeds with \(coordinator.embedder.id), not \(b.embedder)"
                    logger.warning("reindex of \(c.info.name): \(why); its unfinished build \(b.storage) is deleted")
                    await delete(handle)
                }
            } catch {
                logger.warning("reindex of \(c.info.name): cannot abandon the build of job \(b.job): \(error)")
            }
        }
        let known = await registry.all()
        let names = Set(known.map(\.info.name))
        let used = await referenced().union(retiring.withLock { $0 })
        let root = dataDirectory + "/collections"
        for dir in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where !used.contains(dir) {
            // Only what a reindex made or left: a new collection's directory can
            // exist a moment before its catalog entry does.
            if dir.contains("~") || names.contains(dir) { remove(dir) }
        }
    }
}
