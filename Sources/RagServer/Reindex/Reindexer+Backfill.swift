import RagCore
import RagEngine

/// Filling a chunking profile's index: an experiment that defines a profile on a
/// collection that already holds documents starts with that index empty, and
/// its variant would search only what was written after it began.
extension Reindexer {
    /// The profile a request names, as experiments on the collection define it.
    func profile(_ o: ReindexOptions) throws(RagError) -> (name: String, size: Int, overlap: Int) {
        guard let p = coordinator.chunkingProfiles(o.collection).first(where: { $0.name == o.profile }) else {
            throw .notFound("no experiment on collection \(o.collection) defines chunking profile \(o.profile.truncatedUTF8(maxBytes: 64).debugDescription)")
        }
        return p
    }

    /// Re-chunks every document of the collection from its kept source with the
    /// profile's chunking into the profile's index. Writes go on meanwhile (they
    /// write that index too, as always); each page is committed with the
    /// collection's gate held after checking the collection still holds what
    /// was read, as a reindex does. Nothing switches: the index is the profile's.
    func backfill(job: String, _ o: ReindexOptions, progress: (Int) async throws -> Void) async throws -> ReindexSummary {
        let base = try await registry.get(o.collection)
        let sources = try local(base)
        let p = try profile(o)
        let name = ExperimentManager.variantCollection(o.collection, profile: p.name)
        let variant = try await registry.getOrCreate(name, embedder: coordinator.embedder)
        try coordinator.checkEmbedder(variant)
        let chunker = try Coordinator.chunker(size: p.size, overlap: p.overlap, collection: variant.info)
        let target = Target(shards: try local(variant), placedUnder: name)
        logger.info("backfill of \(name) (job \(job)): chunks \(p.size)/\(p.overlap) from \(o.collection)'s kept sources")
        var summary = ReindexSummary(collection: name, embedder: variant.info.embedder, chunkSize: p.size, chunkOverlap: p.overlap)
        try await rebuildPass(o.collection, sources: sources, target: target, chunker: chunker, summary: &summary, progress: progress)
        summary.skipped += try await coordinator.exclusively(o.collection) { try await removeExtra(sources: sources, target: target) }
        try await coordinator.recordWrite(name)
        for shard in target.shards { summary.documents += await shard.counts().documents }
        logger.info("backfill of \(name) (job \(job)): \(summary.documents) documents, \(summary.reembedded) embedded, \(summary.withoutSource) without a kept source")
        return summary
    }
}
