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

    var replicas: [Replica] { cluster.replicas[partition] }

    var key: Ragd_V1_ShardKey {
        Ragd_V1_ShardKey.with {
            $0.collection = collection
            $0.partition = UInt32(partition)
            $0.dimension = UInt32(dimension)
            $0.embedder = embedder
            $0.partitions = UInt32(partitions)
        }
    }

    static func retryable(_ code: RagError.Code) -> Bool {
        [.unavailable, .deadlineExceeded, .internal, .resourceExhausted, .unknown, .aborted].contains(code)
    }

    /// Replicas in the order to try: current and up first (rotating for balance),
    /// then lagging ones, then those seen down.
    func readOrder() -> [Replica] {
        let rs = replicas
        let start = turn.wrappingAdd(1, ordering: .relaxed).oldValue
        let rotated = (0..<rs.count).map { rs[(start + $0) % rs.count] }
        func rank(_ r: Replica) -> Int { r.isDown ? 2 : (cluster.hints.count(r.address) > 0 ? 1 : 0) }
        return rotated.enumerated().sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }.map(\.element)
    }

    func read<Resp: SwiftProtobuf.Message>(_ method: RagMethod, _ request: some SwiftProtobuf.Message, as: Resp.Type) async throws -> Resp {
        let order = readOrder()
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
                let resp = try await r.client.call(method, request, as: Resp.self, timeout: timeout)
                r.succeeded(latency: t.elapsedSeconds)
                return resp
            } catch {
                if Task.isCancelled { throw CancellationError() }
                guard Self.retryable(error.code) else { throw error }
                r.failed(error)
                failures.append("\(r.address): \(error)")
            }
        }
        if let left = CallDeadline.remaining, left <= .zero {
            throw RagError(.deadlineExceeded, "shard \(partition) did not answer within the deadline (\(failures.joined(separator: "; ")))")
        }
        throw RagError(.unavailable, "shard \(partition): no replica answered (\(failures.joined(separator: "; ")))")
    }

    public func keywordStats(terms: [String]) async throws -> KeywordStats {
        let r = try await read(.shardStats, Ragd_V1_ShardStatsRequest.with { $0.shard = key; $0.terms = terms }, as: Ragd_V1_ShardStatsResponse.self)
        return KeywordStats(wire: r.stats)
    }

    public func search(_ request: ShardSearchRequest) async throws -> ShardSearchResult {
        var w = Ragd_V1_ShardSearchRequest()
        w.shard = key
        w.vector = request.vector ?? []
        w.terms = request.terms
        if let s = request.keywordStats { w.stats = s.wire }
        w.k = UInt32(request.k)
        if let f = request.filter { w.filter = f.wire }
        w.includeVectors = request.includeVectors
        let r = try await read(.shardSearch, w, as: Ragd_V1_ShardSearchResponse.self)
        var out = ShardSearchResult()
        out.vectorHits = try r.vectorHits.map { (h) throws(RagError) in try Hit(wire: h) }
        out.keywordHits = try r.keywordHits.map { (h) throws(RagError) in try Hit(wire: h) }
        return out
    }

    public func write(upserts: [PreparedDocument], deletes: [String]) async throws -> Set<String> {
        var w = Ragd_V1_ShardWriteRequest()
        w.shard = key
        w.upserts = upserts.map(\.wire)
        w.deletes = deletes
        let payload = try FrameCodec.bytes(w)
        let timeout = CallDeadline.remaining ?? .seconds(30)
        let hints = cluster.hints
        let outcomes = await withTaskGroup(of: (Replica, Result<Set<String>, RagError>).self) { group in
            for r in replicas {
                group.addTask {
                    // A replica with hints must apply them first: queue behind them.
                    if hints.count(r.address) > 0 { return (r, .failure(RagError(.unavailable, "\(r.address) is catching up"))) }
                    let t = ContinuousClock.now
                    do {
                        let data = try await r.client.unary(.shardWrite, payload: payload, timeout: timeout)
                        r.succeeded(latency: t.elapsedSeconds)
                        let resp = try FrameCodec.payload(Ragd_V1_ShardWriteResponse.self, from: data)
                        return (r, .success(Set(resp.deleted)))
                    } catch {
                        let e = RagError(from: error)
                        r.failed(e)
                        return (r, .failure(e))
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        var deleted = Set<String>()
        var committed = 0
        var failures: [String] = []
        for (r, outcome) in outcomes {
            switch outcome {
            case .success(let d):
                committed += 1
                deleted.formUnion(d)
            case .failure(let e):
                failures.append("\(r.address): \(e)")
                try hints.append(replica: r.address, payload: payload)
            }
        }
        let quorum = cluster.writeQuorum(partition)
        guard committed >= quorum else {
            throw RagError(.unavailable, "shard \(partition): write committed on \(committed) of \(replicas.count) replicas, quorum is \(quorum); "
                + "the others will catch up (\(failures.joined(separator: "; ")))")
        }
        return deleted
    }

    public func contentHashes(_ ids: [String]) async throws -> [String: UInt64] {
        try await read(.shardHashes, Ragd_V1_ShardHashesRequest.with { $0.shard = key; $0.ids = ids }, as: Ragd_V1_ShardHashesResponse.self).hashes
    }

    public func counts() async throws -> ShardCounts {
        let r = try await read(.shardCounts, Ragd_V1_ShardCountsRequest.with { $0.shard = key }, as: Ragd_V1_ShardCountsResponse.self)
        return ShardCounts(partition: partition, documents: Int(r.documents), chunks: Int(r.chunks))
    }

    public func close() async {}
}
