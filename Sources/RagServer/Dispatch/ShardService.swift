import Foundation
import RagCore
import RagEngine
import RagStore
import RagWire
import SwiftProtobuf

/// The internal RPCs a shard node answers for its coordinator.
public struct ShardService: Sendable {
    let host: ShardHost
    let backups: ShardBackups

    public init(host: ShardHost) {
        self.host = host
        backups = ShardBackups(dataDirectory: host.configuration.dataDirectory)
    }

    public var handlers: [String: RPCHandler] {
        [
            RagMethod.shardSearch.rawValue: .unary { p, _ in try await search(p) },
            RagMethod.shardStats.rawValue: .unary { p, _ in try await stats(p) },
            RagMethod.shardWrite.rawValue: .unary { p, _ in try await write(p) },
            RagMethod.shardHashes.rawValue: .unary { p, _ in try await hashes(p) },
            RagMethod.shardCounts.rawValue: .unary { p, _ in try await counts(p) },
            RagMethod.shardFetch.rawValue: .unary { p, _ in try await fetch(p) },
            RagMethod.shardTexts.rawValue: .unary { p, _ in try await texts(p) },
            RagMethod.shardFence.rawValue: .unary { p, _ in try await fenceRequest(p) },
            RagMethod.shardSlot.rawValue: .unary { p, _ in try await slot(p) },
            RagMethod.shardReceive.rawValue: .unary { p, _ in try await receive(p) },
            RagMethod.shardDrop.rawValue: .unary { p, _ in try await drop(p) },
            RagMethod.shardLog.rawValue: .unary { p, _ in try await log(p) },
            RagMethod.shardBackup.rawValue: .unary { p, _ in try await backup(p) },
            RagMethod.shardBackupRead.rawValue: .unary { p, _ in try await backupRead(p) },
        ]
    }

    /// Decodes a request and checks its placement version against the fence.
    func decode<M: SwiftProtobuf.Message>(_ type: M.Type, _ payload: Data, key: (M) -> Ragd_V1_ShardKey) async throws(RagError) -> M {
        let r = try FrameCodec.payload(M.self, from: payload)
        try await host.checkFence(key(r).placementVersion)
        return r
    }

    func search(_ payload: Data) async throws -> Data {
        let r = try await decode(Ragd_V1_ShardSearchRequest.self, payload) { $0.shard }
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
        let r = try await decode(Ragd_V1_ShardStatsRequest.self, payload) { $0.shard }
        var out = Ragd_V1_ShardStatsResponse()
        if let shard = try await host.existing(r.shard.collection, Int(r.shard.partition)) {
            out.stats = try await shard.keywordStats(terms: r.terms).wire
        } else {
            out.stats = KeywordStats(documentFrequency: Dictionary(uniqueKeysWithValues: Set(r.terms).map { ($0, 0) })).wire
        }
        return try FrameCodec.bytes(out)
    }

    func write(_ payload: Data) async throws -> Data {
        let r = try await decode(Ragd_V1_ShardWriteRequest.self, payload) { $0.shard }
        let dimension = Int(r.shard.dimension)
        let upserts = try r.upserts.map { (d) throws(RagError) in try PreparedDocument(wire: d, dimension: dimension) }
        var out = Ragd_V1_ShardWriteResponse()
        if upserts.isEmpty, !r.sequence, r.seq == 0, try await host.existing(r.shard.collection, Int(r.shard.partition)) == nil {
            return try FrameCodec.bytes(out)  // deletes on a partition that was never written: nothing to do
        }
        let shard = try await host.openOrCreate(r.shard.collection, Int(r.shard.partition), dimension: dimension, index: r.shard.index,
                                                placement: ShardPlacement(embedder: r.shard.embedder, partitions: Int(r.shard.partitions)))
        let deleted: Set<String>
        if r.sequence {
            let (seq, d) = try await shard.sequence(upserts: upserts, deletes: r.deletes, version: r.shard.placementVersion,
                                                    payload: try Self.entryPayload(r))
            out.seq = seq
            out.entryVersion = r.shard.placementVersion
            deleted = d
        } else if r.seq > 0 {
            let entry = LogEntry(seq: r.seq, version: r.entryVersion, payload: try Self.entryPayload(r))
            deleted = try await shard.apply(entry: entry, upserts: upserts, deletes: r.deletes)
            out.seq = r.seq
            out.entryVersion = r.entryVersion
        } else {
            deleted = try await shard.write(upserts: upserts, deletes: r.deletes)
        }
        out.deleted = Array(deleted).sorted()
        return try FrameCodec.bytes(out)
    }

    /// What the log keeps of a write: its documents and deletes, nothing of its routing.
    static func entryPayload(_ r: Ragd_V1_ShardWriteRequest) throws(RagError) -> Data {
        try FrameCodec.bytes(Ragd_V1_ShardWriteRequest.with { $0.upserts = r.upserts; $0.deletes = r.deletes })
    }

    func log(_ payload: Data) async throws -> Data {
        let r = try await decode(Ragd_V1_ShardLogRequest.self, payload) { $0.shard }
        var out = Ragd_V1_ShardLogResponse()
        guard let shard = try await host.existing(r.shard.collection, Int(r.shard.partition)) else { return try FrameCodec.bytes(out) }
        let maxBytes = Int(clamping: min(max(r.maxBytes, 64 * 1024), 8 * 1024 * 1024))
        let (entries, truncated, head) = try await shard.log(after: r.after, maxBytes: maxBytes)
        out.entries = entries.map { e in Ragd_V1_ShardLogEntry.with { $0.seq = e.seq; $0.version = e.version; $0.payload = e.payload } }
        out.truncated = truncated
        out.head = head.seq
        out.headVersion = head.version
        return try FrameCodec.bytes(out)
    }

    func backup(_ payload: Data) async throws -> Data {
        let r = try await decode(Ragd_V1_ShardBackupRequest.self, payload) { $0.shard }
        let shard = try await host.existing(r.shard.collection, Int(r.shard.partition))
        let token = try await backups.start(shard?.store)
        return try FrameCodec.bytes(Ragd_V1_ShardBackupResponse.with { $0.token = token })
    }

    func backupRead(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ShardBackupReadRequest.self, from: payload)
        if r.release {
            backups.release(r.token)
            return try FrameCodec.bytes(Ragd_V1_ShardBackupReadResponse())
        }
        let (data, total, copy) = try await backups.read(r.token, offset: r.offset, length: Int(r.length == 0 ? UInt32(SnapshotManager.maxPart) : r.length))
        return try FrameCodec.bytes(Ragd_V1_ShardBackupReadResponse.with {
            $0.data = data
            $0.total = total
            $0.documents = UInt64(copy.documents)
            $0.chunks = UInt64(copy.chunks)
            $0.seq = copy.seq
        })
    }

    func hashes(_ payload: Data) async throws -> Data {
        let r = try await decode(Ragd_V1_ShardHashesRequest.self, payload) { $0.shard }
        var out = Ragd_V1_ShardHashesResponse()
        if let shard = try await host.existing(r.shard.collection, Int(r.shard.partition)) {
            out.hashes = try await shard.contentHashes(r.ids.isEmpty ? await shard.documentIDs() : r.ids)
        }
        return try FrameCodec.bytes(out)
    }

    func counts(_ payload: Data) async throws -> Data {
        let r = try await decode(Ragd_V1_ShardCountsRequest.self, payload) { $0.shard }
        var out = Ragd_V1_ShardCountsResponse()
        if let shard = try await host.existing(r.shard.collection, Int(r.shard.partition)) {
            let c = try await shard.replicationState()
            out.documents = UInt64(c.documents)
            out.chunks = UInt64(c.chunks)
            out.seq = c.seq
            out.seqVersion = c.version
            out.digest = c.digest
            out.firstLogged = c.firstLogged
            out.receiving = shard.receiving.withLock { $0 != nil }
            out.index = shard.indexName
        }
        return try FrameCodec.bytes(out)
    }

    func fetch(_ payload: Data) async throws -> Data {
        let r = try await decode(Ragd_V1_ShardFetchRequest.self, payload) { $0.shard }
        var out = Ragd_V1_ShardFetchResponse()
        if let shard = try await host.existing(r.shard.collection, Int(r.shard.partition)) {
            out.documents = try await shard.stored(r.ids).map(\.wire)
        }
        return try FrameCodec.bytes(out)
    }

    func texts(_ payload: Data) async throws -> Data {
        let r = try await decode(Ragd_V1_ShardTextsRequest.self, payload) { $0.shard }
        guard r.chunks.count <= 10_000 else { throw RagError.invalidArgument("at most 10000 chunks per ShardTexts call, got \(r.chunks.count)") }
        var out = Ragd_V1_ShardTextsResponse()
        if let shard = try await host.existing(r.shard.collection, Int(r.shard.partition)) {
            let asked = Dictionary(r.chunks.map { ($0.key, $0.contentHash) }, uniquingKeysWith: { a, _ in a })
            out.chunks = try await shard.texts(asked).map { Ragd_V1_ChunkText(key: $0.key, contentHash: asked[$0.key]!, text: $0.value) }
        }
        return try FrameCodec.bytes(out)
    }

    func fenceRequest(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ShardFenceRequest.self, from: payload)
        let now = try await host.raiseFence(Int64(clamping: r.version))
        return try FrameCodec.bytes(Ragd_V1_ShardFenceResponse.with { $0.version = UInt64(now) })
    }

    func slot(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ShardSlotRequest.self, from: payload)
        var out = Ragd_V1_ShardSlotResponse()
        for (collection, shard) in await host.partition(Int(r.partition)) {
            let c = await shard.counts()
            let placement = await host.placement(of: collection)
            out.entries.append(Ragd_V1_ShardSlotEntry.with {
                $0.shard = Ragd_V1_ShardKey.with {
                    $0.collection = collection
                    $0.partition = r.partition
                    $0.dimension = UInt32(shard.dimension)
                    $0.embedder = placement.embedder
                    $0.partitions = UInt32(placement.partitions)
                }
                $0.documents = UInt64(c.documents)
                $0.chunks = UInt64(c.chunks)
            })
        }
        return try FrameCodec.bytes(out)
    }

    func receive(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ShardReceiveRequest.self, from: payload)
        let partition = Int(r.partition)
        guard !r.session.isEmpty else { throw RagError.invalidArgument("a receive request needs a session") }
        var out = Ragd_V1_ShardReceiveResponse()
        if r.begin {
            out.known = try await host.beginReceive(partition, session: r.session, clear: r.clear,
                                                    bases: r.bases.map { ($0.shard.collection, $0.seq, $0.version) })
            return try FrameCodec.bytes(out)
        }
        if r.end {
            out.known = await host.session(partition) == r.session
            await host.endReceive(partition, session: r.session)
            return try FrameCodec.bytes(out)
        }
        out.known = await host.session(partition) == r.session
        guard out.known else { return try FrameCodec.bytes(out) }
        guard r.hasShard, Int(r.shard.partition) == partition else { throw RagError.invalidArgument("a receive request names its collection's partition") }
        let dimension = Int(r.shard.dimension)
        let upserts = try r.documents.map { (d) throws(RagError) in try PreparedDocument(wire: d, dimension: dimension) }
        let shard: LocalShard
        if upserts.isEmpty, r.repair.isEmpty {
            // A status call: which ids the cluster wrote during the session.
            if let s = try await host.existing(r.shard.collection, partition) {
                out.touched = s.receiving.withLock { $0?.session == r.session ? Array($0!.touched.keys).sorted() : [] }
            }
            return try FrameCodec.bytes(out)
        }
        shard = try await host.openOrCreate(r.shard.collection, partition, dimension: dimension, index: r.shard.index,
                                            placement: ShardPlacement(embedder: r.shard.embedder, partitions: Int(r.shard.partitions)))
        let (applied, skipped) = try await shard.receive(session: r.session, upserts: upserts, deletes: r.repair)
        out.applied = UInt64(applied)
        out.skipped = UInt64(skipped)
        return try FrameCodec.bytes(out)
    }

    func drop(_ payload: Data) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_ShardDropRequest.self, from: payload)
        try await host.raiseFence(Int64(clamping: r.version))
        let n = try await host.drop(Int(r.partition))
        return try FrameCodec.bytes(Ragd_V1_ShardDropResponse.with { $0.collections = UInt64(n) })
    }
}
