import Foundation
import RagCore
import RagEngine
import RagWire

/// The internal RPCs a shard node answers for its coordinator.
public struct ShardService: Sendable {
    let host: ShardHost

    public init(host: ShardHost) {
        self.host = host
    }

    public var handlers: [String: RPCHandler] {
        [
            RagMethod.shardSearch.rawValue: .unary { p, _ in try await search(p) },
            RagMethod.shardStats.rawValue: .unary { p, _ in try await stats(p) },
            RagMethod.shardWrite.rawValue: .unary { p, _ in try await write(p) },
            RagMethod.shardHashes.rawValue: .unary { p, _ in try await hashes(p) },
            RagMethod.shardCounts.rawValue: .unary { p, _ in try await counts(p) },
            RagMethod.shardFetch.rawValue: .unary { p, _ in try await fetch(p) },
        ]
    }

    func search(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ShardSearchRequest.self, from: payload)
        var out = Ragd_V1_ShardSearchResponse()
        guard let shard = try await host.existing(r.shard.collection, Int(r.shard.partition)) else { return try FrameCodec.bytes(out) }
        if !r.vector.isEmpty, r.vector.count != shard.dimension {
            throw RagError.invalidArgument("query vector has \(r.vector.count) dimensions, partition has \(shard.dimension)")
        }
        let request = ShardSearchRequest(
            vector: r.vector.isEmpty ? nil : r.vector, terms: r.terms,
            keywordStats: r.hasStats ? KeywordStats(wire: r.stats) : nil, k: Int(r.k),
            filter: r.hasFilter ? try MetadataFilter(wire: r.filter) : nil, includeVectors: r.includeVectors)
        let result = try await shard.search(request)
        out.vectorHits = result.vectorHits.map(\.wire)
        out.keywordHits = result.keywordHits.map(\.wire)
        return try FrameCodec.bytes(out)
    }

    func stats(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ShardStatsRequest.self, from: payload)
        var out = Ragd_V1_ShardStatsResponse()
        if let shard = try await host.existing(r.shard.collection, Int(r.shard.partition)) {
            out.stats = try await shard.keywordStats(terms: r.terms).wire
        } else {
            out.stats = KeywordStats(documentFrequency: Dictionary(uniqueKeysWithValues: Set(r.terms).map { ($0, 0) })).wire
        }
        return try FrameCodec.bytes(out)
    }

    func write(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ShardWriteRequest.self, from: payload)
        let dimension = Int(r.shard.dimension)
        let upserts = try r.upserts.map { (d) throws(RagError) in try PreparedDocument(wire: d, dimension: dimension) }
        var out = Ragd_V1_ShardWriteResponse()
        if upserts.isEmpty, try await host.existing(r.shard.collection, Int(r.shard.partition)) == nil {
            return try FrameCodec.bytes(out)  // deletes on a partition that was never written: nothing to do
        }
        let shard = try await host.openOrCreate(r.shard.collection, Int(r.shard.partition), dimension: dimension,
                                                placement: ShardPlacement(embedder: r.shard.embedder, partitions: Int(r.shard.partitions)))
        out.deleted = Array(try await shard.write(upserts: upserts, deletes: r.deletes)).sorted()
        return try FrameCodec.bytes(out)
    }

    func hashes(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ShardHashesRequest.self, from: payload)
        var out = Ragd_V1_ShardHashesResponse()
        if let shard = try await host.existing(r.shard.collection, Int(r.shard.partition)) {
            out.hashes = try await shard.contentHashes(r.ids.isEmpty ? await shard.documentIDs() : r.ids)
        }
        return try FrameCodec.bytes(out)
    }

    func counts(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ShardCountsRequest.self, from: payload)
        var out = Ragd_V1_ShardCountsResponse()
        if let shard = try await host.existing(r.shard.collection, Int(r.shard.partition)) {
            let c = await shard.counts()
            out.documents = UInt64(c.documents)
            out.chunks = UInt64(c.chunks)
        }
        return try FrameCodec.bytes(out)
    }

    func fetch(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ShardFetchRequest.self, from: payload)
        var out = Ragd_V1_ShardFetchResponse()
        if let shard = try await host.existing(r.shard.collection, Int(r.shard.partition)) {
            out.documents = await shard.stored(r.ids).map(\.wire)
        }
        return try FrameCodec.bytes(out)
    }
}
