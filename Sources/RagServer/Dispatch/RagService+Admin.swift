import Foundation
import RagCore
import RagWire

// Operator RPCs: Stats, Health, ListCollections, ClearCache.
extension RagService {
    func clearCache(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        let request = try FrameCodec.payload(Ragd_V1_ClearCacheRequest.self, from: payload)
        if request.collection.isEmpty {
            try ctx.principal.requireAllCollections(for: "clearing every collection's cache")
            await cache?.clear()
        } else {
            try ctx.principal.require(collection: request.collection)
            _ = try await coordinator.registry.get(request.collection)
            try await coordinator.recordWrite(request.collection)
        }
        ctx.logger.info("cache cleared for \(request.collection.isEmpty ? "all collections" : request.collection)")
        return try FrameCodec.bytes(Ragd_V1_ClearCacheResponse())
    }

    func collectionStats(_ handles: [CollectionHandle]) async throws -> [Ragd_V1_CollectionStats] {
        var out: [Ragd_V1_CollectionStats] = []
        for h in handles {
            var c = Ragd_V1_CollectionStats()
            c.name = h.info.name
            c.dimension = UInt32(h.info.dimension)
            c.embedder = h.info.embedder
            c.index = coordinator.configuration.vectorIndexPolicy(h.info.index).choice.rawValue
            for s in h.shards {
                let n = try await s.counts()
                c.documents += UInt64(n.documents)
                c.chunks += UInt64(n.chunks)
                c.partitions.append(Ragd_V1_PartitionStats.with {
                    $0.partition = UInt32(n.partition)
                    $0.documents = UInt64(n.documents)
                    $0.chunks = UInt64(n.chunks)
                    $0.index = n.index
                })
            }
            out.append(c)
        }
        return out
    }

    func statsCall(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        let request = try FrameCodec.payload(Ragd_V1_StatsRequest.self, from: payload)
        if !request.collection.isEmpty { try ctx.principal.require(collection: request.collection) }
        let handles = request.collection.isEmpty
            ? await coordinator.registry.all().filter { ctx.principal.allows(collection: $0.info.name) }
            : [try await coordinator.registry.get(request.collection)]
        let snap = stats.snapshot()
        var r = Ragd_V1_StatsResponse()
        r.collections = try await collectionStats(handles)
        r.queriesTotal = snap.queries
        r.queryErrors = snap.queryErrors
        r.latency = snap.latency.map { p in
            Ragd_V1_LatencyStats.with {
                $0.component = p.component
                $0.count = p.count
                $0.p50Seconds = p.p50
                $0.p95Seconds = p.p95
                $0.p99Seconds = p.p99
                $0.meanSeconds = p.mean
            }
        }
        r.uptimeSeconds = snap.uptimeSeconds
        r.version = Self.version
        r.openConnections = snap.connections
        r.inFlightCalls = snap.inFlight
        r.cache = cacheStats()
        r.queues = await coordinator.workQueues(jobs: jobs)
        r.embedder = coordinator.embedder.id
        r.lexicalEmbedder = coordinator.embedder.isLexical
        // Experiments change every user's answers: only admins see their configuration.
        if let experiments, ctx.principal.role == .admin { r.experiments = try experiments.list().map { (e) throws(RagError) in try experiments.report(e.name) } }
        return try FrameCodec.bytes(r)
    }

    func cacheStats() -> Ragd_V1_CacheStats {
        var c = Ragd_V1_CacheStats()
        let e = coordinator.embeddingCache.stats
        c.embeddingHits = e.hits
        c.embeddingMisses = e.misses
        guard let cache else { c.l2Backend = "none"; return c }
        let s = cache.snapshot()
        c.enabled = cache.settings.enabled
        c.l2Backend = cache.l2?.name ?? "none"
        c.l1Hits = s.l1Hits
        c.l2Hits = s.l2Hits
        c.hits = s.l1Hits + s.l2Hits
        c.misses = s.misses
        c.hitRate = s.hitRate
        c.evictions = s.evictions
        c.bytesUsed = UInt64(s.bytes)
        c.entries = UInt64(s.entries)
        c.errors = s.errors
        c.pipelineRuns = s.pipelineRuns
        c.coalesced = s.coalesced
        return c
    }

    func health(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        _ = try FrameCodec.payload(Ragd_V1_HealthRequest.self, from: payload)
        var r = Ragd_V1_HealthResponse()
        r.status = "SERVING"
        r.version = Self.version
        r.uptimeSeconds = stats.snapshot().uptimeSeconds
        r.role = role
        r.replicas = cluster?.health() ?? []
        if role != "shard" { r.embedder = coordinator.embedderDescription }
        if let etcd = controlPlane, let reason = await etcd.probe() {
            r.degraded = "etcd unreachable (\(reason)): queries use the catalog and layout seen last; writes are refused"
        }
        return try FrameCodec.bytes(r)
    }

    func listCollections(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        _ = try FrameCodec.payload(Ragd_V1_ListCollectionsRequest.self, from: payload)
        var r = Ragd_V1_ListCollectionsResponse()
        r.collections = try await collectionStats(await coordinator.registry.all().filter { ctx.principal.allows(collection: $0.info.name) })
        return try FrameCodec.bytes(r)
    }
}
