import Foundation
import RagClient
import RagCore
import RagEngine
import RagWire
import Tracing
import SwiftProtobuf
import Synchronization

/// A partition held by shard nodes: the same operations as `LocalShard`, over
/// the wire. Reads go to one in-sync replica (rotating) and fail over to the
/// next within the call's remaining deadline. A write is ordered by the
/// partition's primary (logged and applied there first), then sent with its
/// sequence number to every other in-sync replica; it is acknowledged when all
/// have applied it, or when the ones that failed are out of the in-sync set.
public final class RemoteShard: Shard {
    public let partition: Int
    let collection: String
    let dimension: Int
    let embedder: String
    let partitions: Int
    /// The collection's vector index ("": each node's `--vector-index`).
    let index: String
    let cluster: Cluster
    private let turn = Atomic<Int>(0)

    /// `embedder` and `partitions` travel with every request, so a shard can refuse
    /// writes that do not belong to the collection it stores.
    public init(collection: String, partition: Int, dimension: Int, embedder: String = "", partitions: Int = 0, index: String = "",
                cluster: Cluster) {
        self.collection = collection
        self.index = index
        self.partition = partition
        self.dimension = dimension
        self.embedder = embedder
        self.partitions = partitions
        self.cluster = cluster
    }

    func key(_ version: Int64) -> Ragd_V1_ShardKey {
        Ragd_V1_ShardKey.with {
            $0.collection = collection
            $0.partition = UInt32(partition)
            $0.dimension = UInt32(dimension)
            $0.embedder = embedder
            $0.partitions = UInt32(partitions)
            $0.placementVersion = UInt64(max(0, version))
            $0.index = index
        }
    }

    static func retryable(_ code: RagError.Code) -> Bool {
        [.unavailable, .deadlineExceeded, .internal, .resourceExhausted, .unknown, .aborted].contains(code)
    }

    /// Runs `body` on the partition's current route. A node that refuses the
    /// route's placement version as stale makes the coordinator read the
    /// placement again and run `body` once more on the newer route (writes are
    /// idempotent: a document is replaced whole, a delete of a missing id is a no-op).
    func routed<T>(_ body: (Route) async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            let route = try await currentRoute()
            do {
                return try await body(route)
            } catch let e as RagError where Placement.isStale(e) && attempt < 30 && (CallDeadline.remaining.map { $0 > .zero } ?? true) {
                // The placement can change several times in a row (a move's
                // steps, failovers of many partitions): try again while the
                // deadline allows, reading it each time.
                attempt += 1
                try? await cluster.refresh()
                if cluster.placement.version <= route.version { try await Task.sleep(for: .milliseconds(min(50 * attempt, 500))) }
            }
        }
    }

    /// The partition's route; when there is none (no node, none in sync),
    /// perhaps only this coordinator's copy of the placement is behind: read it again first.
    func currentRoute() async throws(RagError) -> Route {
        do { return try cluster.route(partition) } catch {
            guard cluster.store != nil else { throw error }
            try? await cluster.refresh()
            return try cluster.route(partition)
        }
    }

    /// Set for the span of one query: its statistics and its search start at
    /// the same replica of each partition, so BM25 statistics and scores come
    /// from one copy (queries differ in pin, which spreads the load).
    @TaskLocal static var pin: Int?

    /// In-sync replicas in the order to try: up first (rotating for balance,
    /// or from the query's pin), then those seen down.
    func readOrder(_ rs: [Replica]) -> [Replica] {
        let start = Self.pin ?? turn.wrappingAdd(1, ordering: .relaxed).oldValue
        let rotated = (0..<rs.count).map { rs[(start + $0) % rs.count] }
        func rank(_ r: Replica) -> Int { r.isDown ? 1 : 0 }
        return rotated.enumerated().sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }.map(\.element)
    }

    func read<Resp: SwiftProtobuf.Message, Req: SwiftProtobuf.Message>(_ method: RagMethod, as: Resp.Type,
                                                                        _ request: @escaping (Ragd_V1_ShardKey) -> Req) async throws -> Resp {
        try await routed { route in
            let order = readOrder(route.replicas)
            let message = request(key(route.version))
            var failures: [String] = []
            for (i, r) in order.enumerated() {
                try Task.checkCancellation()
                var timeout: Duration?
                if let left = CallDeadline.remaining {
                    guard left > .zero else { throw RagError(.deadlineExceeded, "deadline passed before shard \(partition) answered") }
                    // Leave the replicas after this one a share of the budget.
                    timeout = i == order.count - 1 ? left : max(left / (order.count - i), .milliseconds(5))
                }
                let t = ContinuousClock.now
                do {
                    let resp = try await withSpan(method.rawValue, ofKind: .client) { span in
                        span.attributes["ragd.partition"] = partition
                        span.attributes["ragd.replica"] = r.address
                        span.attributes["ragd.collection"] = collection
                        return try await r.client.call(method, message, as: Resp.self, timeout: timeout)
                    }
                    r.succeeded(latency: t.elapsedSeconds)
                    return resp
                } catch {
                    if Task.isCancelled { throw CancellationError() }
                    let e = RagError(from: error)
                    guard Self.retryable(e.code), !Placement.isStale(e) else { throw e }
                    r.failed(e)
                    failures.append("\(r.address): \(e)")
                }
            }
            if let left = CallDeadline.remaining, left <= .zero {
                throw RagError(.deadlineExceeded, "shard \(partition) did not answer within the deadline (\(failures.joined(separator: "; ")))")
            }
            // Perhaps the replicas in sync changed and this coordinator has not read it yet.
            if cluster.store != nil {
                try? await cluster.refresh()
                if cluster.placement.version > route.version {
                    throw RagError(.aborted, "\(Placement.staleMarker): no replica of shard \(partition) answered under version \(route.version)")
                }
            }
            throw RagError(.unavailable, "shard \(partition): no replica answered (\(failures.joined(separator: "; ")))")
        }
    }

    public func keywordStats(terms: [String]) async throws -> KeywordStats {
        let r = try await read(.shardStats, as: Ragd_V1_ShardStatsResponse.self) { k in Ragd_V1_ShardStatsRequest.with { $0.shard = k; $0.terms = terms } }
        return KeywordStats(wire: r.stats)
    }

    public func search(_ request: ShardSearchRequest) async throws -> ShardSearchResult {
        var w = Ragd_V1_ShardSearchRequest()
        w.vector = request.vector ?? []
        w.terms = request.terms
        if let s = request.keywordStats { w.stats = s.wire }
        w.k = UInt32(request.k)
        if let f = request.filter { w.filter = f.wire }
        w.includeVectors = request.includeVectors
        let message = w
        let r = try await read(.shardSearch, as: Ragd_V1_ShardSearchResponse.self) { k in var m = message; m.shard = k; return m }
        var out = ShardSearchResult()
        out.vectorHits = try r.vectorHits.map { (h) throws(RagError) in try Hit(wire: h) }
        out.keywordHits = try r.keywordHits.map { (h) throws(RagError) in try Hit(wire: h) }
        return out
    }

    public func texts(_ chunks: [ChunkKey: UInt64]) async throws -> [ChunkKey: String] {
        guard !chunks.isEmpty else { return [:] }
        let asked = chunks.map { Ragd_V1_ChunkText(key: $0.key, contentHash: $0.value) }
        let r = try await read(.shardTexts, as: Ragd_V1_ShardTextsResponse.self) { k in Ragd_V1_ShardTextsRequest.with { $0.shard = k; $0.chunks = asked } }
        var out: [ChunkKey: String] = [:]
        for c in r.chunks where chunks[c.key] == c.contentHash { out[c.key] = c.text }
        return out
    }

    /// Writes through the primary. A write larger than one frame goes as
    /// ordered sub-writes (each atomic on its own; re-running the request
    /// completes a write that failed half way); a single document that cannot
    /// fit a frame is refused before any replica sees it.
    public func write(upserts: [PreparedDocument], deletes: [String]) async throws -> Set<String> {
        var deleted = Set<String>()
        for (ups, dels) in try Self.split(upserts: upserts, deletes: deletes, limit: cluster.maxWriteBytes) {
            var w = Ragd_V1_ShardWriteRequest()
            w.upserts = ups
            w.deletes = dels
            let message = w
            try await routed { route in deleted.formUnion(try await replicate(message, route: route)) }
        }
        return deleted
    }

    /// Groups a write into sub-writes of at most `limit` encoded bytes, deletes first.
    static func split(upserts: [PreparedDocument], deletes: [String], limit: Int) throws(RagError) -> [([Ragd_V1_StoredDocument], [String])] {
        var out: [([Ragd_V1_StoredDocument], [String])] = []
        var ids: [String] = []
        var size = 0
        for id in deletes {
            if size + id.utf8.count + 8 > limit, !ids.isEmpty { out.append(([], ids)); ids = []; size = 0 }
            ids.append(id)
            size += id.utf8.count + 8
        }
        if !ids.isEmpty { out.append(([], ids)) }
        var docs: [Ragd_V1_StoredDocument] = []
        size = 0
        for d in upserts {
            let wire = d.wire
            let n = wire.encodedSizeBound + 6
            guard n <= limit else {
                throw RagError.invalidArgument("document \(d.id.truncatedUTF8(maxBytes: 64).debugDescription) is \(n / 1_048_576) MiB with its embeddings; "
                    + "one write to a shard carries at most \(limit / 1_048_576) MiB: split the document")
            }
            if size + n > limit, !docs.isEmpty { out.append((docs, [])); docs = []; size = 0 }
            docs.append(wire)
            size += n
        }
        if !docs.isEmpty { out.append((docs, [])) }
        return out
    }

    /// Errors that the same write would meet again: never retried.
    static func permanent(_ code: RagError.Code) -> Bool {
        [.invalidArgument, .failedPrecondition, .outOfRange, .unimplemented, .permissionDenied, .unauthenticated, .alreadyExists, .notFound, .dataLoss]
            .contains(code)
    }

    enum Target { case follower(String), joining(String), leaving }

    /// One write under `route`: ordered and applied by the primary, then sent
    /// to every other node of the partition at once. A primary that does not
    /// answer is replaced by the next in-sync replica (in etcd) and the write
    /// tried again there; a follower that misses it is taken out of the
    /// in-sync set before the write is acknowledged; a joining node that
    /// misses it fails its move. Without etcd (a cluster file) nothing can be
    /// taken out: the write fails unless every replica applied it.
    func replicate(_ message: Ragd_V1_ShardWriteRequest, route: Route) async throws -> Set<String> {
        guard let (primaryID, primary) = route.primary else { throw RagError(.unavailable, "shard \(partition) has no in-sync replica") }
        // Half the time left each for the primary and for the others, so a
        // node that hangs (paused, not dead) leaves time to fail over or to
        // take it out of the in-sync set within the caller's deadline.
        let timeout = (CallDeadline.remaining ?? .seconds(30)) / 2
        var request = message
        request.shard = key(route.version)
        request.sequence = true
        let ordered: Ragd_V1_ShardWriteResponse
        let t = ContinuousClock.now
        do {
            ordered = try await primary.client.call(.shardWrite, request, as: Ragd_V1_ShardWriteResponse.self, timeout: timeout)
            primary.succeeded(latency: t.elapsedSeconds)
        } catch {
            if Task.isCancelled { throw CancellationError() }
            let e = RagError(from: error)
            guard Self.retryable(e.code), !Placement.isStale(e) else { throw e }
            primary.failed(e)
            guard !route.isStatic else { throw RagError(e.code, "shard \(partition): the primary \(primary.address) did not take the write: \(e.message)") }
            // Fail over: the next in-sync replica holds every acknowledged write.
            try await cluster.changeSlot(partition, from: route.slot) { (slot) throws(RagError) in
                slot.dropInSync([primaryID])
                guard !slot.readers.isEmpty else {
                    throw RagError(.unavailable, "shard \(partition): the primary \(primary.address) does not answer (\(e.message)) and no other replica is in sync")
                }
            }
            cluster.logger.warning("partition \(partition): primary \(primaryID) failed (\(e.message)); \(cluster.placement.slots[partition].primary ?? "none") orders writes now")
            throw RagError(.aborted, "\(Placement.staleMarker): partition \(partition) failed over")
        }
        var entry = message
        entry.shard = key(route.version)
        entry.seq = ordered.seq
        entry.entryVersion = ordered.entryVersion
        let sent = entry
        let forwardTimeout = max((CallDeadline.remaining ?? .seconds(30)) / 2, .milliseconds(100))
        let targets: [(Replica, Target)] = route.followers.map { ($0.replica, .follower($0.id)) } + route.joining.map { ($0.replica, .joining($0.id)) }
            + route.leaving.map { ($0, .leaving) }
        let outcomes = await withTaskGroup(of: (Int, RagError?).self) { group in
            for (i, (r, _)) in targets.enumerated() {
                group.addTask {
                    let t = ContinuousClock.now
                    do {
                        _ = try await ReplicaSync.forward(sent, to: r.client, primary: primary.client, timeout: forwardTimeout)
                        r.succeeded(latency: t.elapsedSeconds)
                        return (i, nil)
                    } catch {
                        let e = RagError(from: error)
                        if !Placement.isStale(e), Self.retryable(e.code) { r.failed(e) }
                        return (i, e)
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        if let stale = outcomes.compactMap({ $0.1 }).first(where: Placement.isStale) { throw stale }
        var dropped: [String] = []
        var failures: [String] = []
        for (i, error) in outcomes {
            guard let e = error else { continue }
            let (r, target) = targets[i]
            switch target {
            case .follower(let id):
                dropped.append(id)
                failures.append("\(r.address): \(e.message)")
            case .joining(let id):
                let undone = try await cluster.store?.markFailed(partition: partition, node: id, reason: "a write did not reach it: \(e.message)") ?? false
                // Not copying any more: it is a replica now, and one that missed a write.
                if !undone { dropped.append(id); failures.append("\(r.address): \(e.message)") }
            case .leaving:
                break  // nothing reads it any more; its copy is dropped next
            }
        }
        if !dropped.isEmpty {
            guard !route.isStatic else {
                throw RagError(.unavailable, "shard \(partition): write \(ordered.seq) was not applied by every replica, so it is not acknowledged "
                    + "(\(failures.joined(separator: "; "))); a cluster file cannot take a replica out of sync: run with --etcd")
            }
            try await cluster.changeSlot(partition, from: route.slot) { slot in slot.dropInSync(dropped) }
            cluster.logger.warning("partition \(partition): \(dropped.joined(separator: ", ")) out of sync after missing write \(ordered.seq): \(failures.joined(separator: "; "))")
        }
        return Set(ordered.deleted)
    }

    public func contentHashes(_ ids: [String]) async throws -> [String: UInt64] {
        try await read(.shardHashes, as: Ragd_V1_ShardHashesResponse.self) { k in Ragd_V1_ShardHashesRequest.with { $0.shard = k; $0.ids = ids } }.hashes
    }

    public func counts() async throws -> ShardCounts {
        let r = try await read(.shardCounts, as: Ragd_V1_ShardCountsResponse.self) { k in Ragd_V1_ShardCountsRequest.with { $0.shard = k } }
        return ShardCounts(partition: partition, documents: Int(r.documents), chunks: Int(r.chunks), index: r.index)
    }

    public func close() async {}
}
