import Foundation
import RagClient
import RagCore
import RagEngine
import RagWire
import SwiftProtobuf
import Synchronization

/// A partition held by shard nodes: the same operations as `LocalShard`, over
/// the wire. Reads go to one replica (current ones first, rotating) and fail
/// over to the next within the call's remaining deadline; writes go to every
/// replica and succeed at the write quorum, with hints for the ones that missed.
public final class RemoteShard: Shard {
    public let partition: Int
    let collection: String
    let dimension: Int
    let embedder: String
    let partitions: Int
    let cluster: Cluster
    private let turn = Atomic<Int>(0)

    /// `embedder` and `partitions` travel with every request, so a shard can refuse
    /// writes that do not belong to the collection it stores.
    public init(collection: String, partition: Int, dimension: Int, embedder: String = "", partitions: Int = 0, cluster: Cluster) {
        self.collection = collection
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
            let route = try cluster.route(partition)
            do {
                return try await body(route)
            } catch let e as RagError where Placement.isStale(e) && attempt < 5 {
                attempt += 1
                try? await cluster.refresh()
                if cluster.placement.version <= route.version { try await Task.sleep(for: .milliseconds(50 * attempt)) }
            }
        }
    }

    /// Set for the span of one query: its statistics and its search start at
    /// the same replica of each partition, so BM25 statistics and scores come
    /// from one copy (queries differ in pin, which spreads the load).
    @TaskLocal static var pin: Int?

    /// Replicas in the order to try: current and up first (rotating for balance,
    /// or from the query's pin), then lagging ones, then those seen down.
    func readOrder(_ rs: [Replica]) -> [Replica] {
        let start = Self.pin ?? turn.wrappingAdd(1, ordering: .relaxed).oldValue
        let rotated = (0..<rs.count).map { rs[(start + $0) % rs.count] }
        func rank(_ r: Replica) -> Int { r.isDown ? 2 : (cluster.hints.count(r.address) > 0 ? 1 : 0) }
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
                    let resp = try await r.client.call(method, message, as: Resp.self, timeout: timeout)
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

    /// Writes to every replica. A write larger than one frame goes as ordered
    /// sub-writes (each atomic on its own; re-running the request completes a
    /// write that failed half way); a single document that cannot fit a frame
    /// is refused before any replica sees it.
    public func write(upserts: [PreparedDocument], deletes: [String]) async throws -> Set<String> {
        var deleted = Set<String>()
        for (ups, dels) in try Self.split(upserts: upserts, deletes: deletes, limit: cluster.maxWriteBytes) {
            var w = Ragd_V1_ShardWriteRequest()
            w.upserts = ups
            w.deletes = dels
            let message = w
            try await routed { route in
                var request = message
                request.shard = key(route.version)
                deleted.formUnion(try await write(try FrameCodec.bytes(request), route: route))
            }
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

    /// Errors that the same write would meet again: never hinted nor retried.
    static func permanent(_ code: RagError.Code) -> Bool {
        [.invalidArgument, .failedPrecondition, .outOfRange, .unimplemented, .permissionDenied, .unauthenticated, .alreadyExists, .notFound, .dataLoss]
            .contains(code)
    }

    enum Target { case replica, joining(String), leaving }

    /// One write to every node of `route`. Read replicas count towards the write
    /// quorum and get a hint when they miss it; a joining node that misses it
    /// has its move marked failed in etcd first (else the write is not
    /// acknowledged: the move could switch to a copy without it).
    func write(_ payload: Data, route: Route) async throws -> Set<String> {
        let timeout = CallDeadline.remaining ?? .seconds(30)
        let hints = cluster.hints
        let targets: [(Replica, Target)] = route.replicas.map { ($0, .replica) } + route.joining.map { ($0.replica, .joining($0.id)) }
            + route.leaving.map { ($0, .leaving) }
        let outcomes = await withTaskGroup(of: (Int, Result<Set<String>, RagError>).self) { group in
            for (i, (r, target)) in targets.enumerated() {
                group.addTask {
                    // A replica with hints must apply them first: queue behind them.
                    if case .replica = target, hints.count(r.address) > 0 {
                        return (i, .failure(RagError(.unavailable, "\(r.address) is catching up")))
                    }
                    let t = ContinuousClock.now
                    do {
                        let data = try await r.client.unary(.shardWrite, payload: payload, timeout: timeout)
                        r.succeeded(latency: t.elapsedSeconds)
                        let resp = try FrameCodec.payload(Ragd_V1_ShardWriteResponse.self, from: data)
                        return (i, .success(Set(resp.deleted)))
                    } catch {
                        let e = RagError(from: error)
                        if !Placement.isStale(e), !Self.permanent(e.code) { r.failed(e) }
                        return (i, .failure(e))
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        if let stale = outcomes.compactMap({ if case .failure(let e) = $0.1, Placement.isStale(e) { return e } else { return nil } }).first {
            throw stale
        }
        // A write a replica refuses for good (it does not fit what that replica
        // stores) is not hinted: it would be refused again forever, and every
        // later write would queue behind it.
        let refused = outcomes.compactMap { i, o -> (Replica, RagError)? in
            if case .failure(let e) = o, Self.permanent(e.code) { return (targets[i].0, e) } else { return nil }
        }
        if let (r, e) = refused.first {
            let applied = outcomes.filter { if case .success = $0.1 { return true } else { return false } }.count
            throw RagError(e.code, "shard \(partition): \(r.address) refused the write: \(e.message)"
                + (applied > 0 ? " (\(applied) of \(targets.count) nodes applied it; ragctl cluster status shows them)" : ""))
        }
        var deleted = Set<String>()
        var committed = 0
        var failures: [String] = []
        for (i, outcome) in outcomes {
            let (r, target) = targets[i]
            switch outcome {
            case .success(let d):
                if case .replica = target { committed += 1 }
                deleted.formUnion(d)
            case .failure(let e):
                switch target {
                case .replica:
                    failures.append("\(r.address): \(e)")
                    try hints.append(replica: r.address, payload: payload)
                case .joining(let id):
                    let store = cluster.store
                    let undone = try await store?.markFailed(partition: partition, node: id, reason: "a write did not reach it: \(e.message)") ?? false
                    // Not copying any more: it is a replica now, and catches up like one.
                    if !undone { try hints.append(replica: r.address, payload: payload) }
                case .leaving:
                    break  // nothing reads it any more; its copy is dropped next
                }
            }
        }
        guard committed >= route.quorum else {
            throw RagError(.unavailable, "shard \(partition): write committed on \(committed) of \(route.replicas.count) replicas, quorum is \(route.quorum); "
                + "the others will catch up (\(failures.joined(separator: "; ")))")
        }
        return deleted
    }

    public func contentHashes(_ ids: [String]) async throws -> [String: UInt64] {
        try await read(.shardHashes, as: Ragd_V1_ShardHashesResponse.self) { k in Ragd_V1_ShardHashesRequest.with { $0.shard = k; $0.ids = ids } }.hashes
    }

    public func counts() async throws -> ShardCounts {
        let r = try await read(.shardCounts, as: Ragd_V1_ShardCountsResponse.self) { k in Ragd_V1_ShardCountsRequest.with { $0.shard = k } }
        return ShardCounts(partition: partition, documents: Int(r.documents), chunks: Int(r.chunks))
    }

    public func close() async {}
}
