import Foundation
import RagCore
import RagEngine
import RagStore
import Synchronization

/// The partitions a shard node hosts, by (collection, partition). A partition
/// is opened from disk at start or created on its first write; the coordinator
/// owns the catalog, the shard only stores and searches.
public actor ShardHost {
    let configuration: RagServerConfiguration
    private var shards: [String: LocalShard] = [:]
    /// Open receive sessions (partition moves), by logical partition.
    private var sessions: [Int: String] = [:]
    /// Where each collection's copy starts, for a receive session's partitions not created yet.
    private var bases: [String: (seq: UInt64, version: UInt64)] = [:]
    /// The placement fence: requests routed by an older version are refused.
    /// Kept on disk, so a node that restarts does not take stale routes again.
    public nonisolated let fence: Atomic<Int64>
    nonisolated let fencePath: String

    public init(configuration: RagServerConfiguration) throws(RagError) {
        self.configuration = configuration
        fencePath = configuration.dataDirectory + "/placement-fence"
        let stored = (try? String(contentsOfFile: fencePath, encoding: .utf8)).flatMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        fence = Atomic(stored ?? 0)
        let root = configuration.dataDirectory + "/collections"
        let fm = FileManager.default
        for collection in (try? fm.contentsOfDirectory(atPath: root)) ?? [] {
            for file in (try? fm.contentsOfDirectory(atPath: root + "/" + collection)) ?? [] where file.hasPrefix("p") && file.hasSuffix(".sqlite") {
                guard let p = Int(file.dropFirst().dropLast(7)) else { continue }
                let dimension = Self.dimension(root + "/" + collection)
                shards[Self.key(collection, p)] = try LocalShard(path: root + "/" + collection + "/" + file, partition: p,
                                                                  dimension: dimension, synchronous: configuration.synchronous,
                                                                  vectorIndex: configuration.vectorIndexPolicy(Self.index(root + "/" + collection)),
                                                                  logKeep: configuration.replicationLog)
            }
        }
    }

    static func key(_ collection: String, _ partition: Int) -> String { "\(collection)/\(partition)" }

    /// The dimension recorded beside a collection's partitions.
    static func dimension(_ dir: String) -> Int {
        (try? String(contentsOfFile: dir + "/dimension", encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 384
    }

    /// The vector index recorded beside a collection's partitions ("": this node's `--vector-index`).
    static func index(_ dir: String) -> String {
        (try? String(contentsOfFile: dir + "/index", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    /// The partition, or nil when nothing was ever written to it here.
    public func existing(_ collection: String, _ partition: Int) throws(RagError) -> LocalShard? {
        try CollectionRegistry.validateStorage(collection)
        return shards[Self.key(collection, partition)]
    }

    /// Partition numbers a shard accepts: placement is `hash mod P` with P far below this.
    public static let maxPartition = 4095

    /// The partition a write goes to, checked against what this node stores of
    /// the collection: dimension, embedder and placement (partition count). The
    /// first write records them; a later one that disagrees is refused.
    /// `index`: the collection's vector index, recorded with its first partition here.
    public func openOrCreate(_ collection: String, _ partition: Int, dimension: Int, index: String = "",
                             placement: ShardPlacement = ShardPlacement()) async throws(RagError) -> LocalShard {
        try CollectionRegistry.validateStorage(collection)
        let dir = configuration.dataDirectory + "/collections/" + collection
        guard (0...Self.maxPartition).contains(partition) else { throw .invalidArgument("partition \(partition) is outside 0...\(Self.maxPartition)") }
        if placement.partitions > 0, partition >= placement.partitions {
            throw .invalidArgument("partition \(partition) is outside collection \(collection)'s placement (0..<\(placement.partitions))")
        }
        try placement.check(against: ShardPlacement.load(dir), collection: collection)
        if let s = try existing(collection, partition) {
            guard s.dimension == dimension else {
                throw .failedPrecondition("collection \(collection) stores \(s.dimension)-dimensional vectors, not \(dimension)")
            }
            try placement.record(in: dir)
            return s
        }
        guard (1...8192).contains(dimension) else { throw .invalidArgument("dimension \(dimension) out of range") }
        let dimensionFile = dir + "/dimension"
        if FileManager.default.fileExists(atPath: dimensionFile) {
            // The collection exists here: its dimension is fixed, never rewritten.
            let stored = Self.dimension(dir)
            guard stored == dimension else { throw .failedPrecondition("collection \(collection) stores \(stored)-dimensional vectors, not \(dimension)") }
        } else {
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            if !index.isEmpty, VectorIndexChoice(name: index) != nil {
                try? "\(index)\n".write(toFile: dir + "/index", atomically: true, encoding: .utf8)
            }
            try? "\(dimension)\n".write(toFile: dimensionFile, atomically: true, encoding: .utf8)
        }
        try placement.record(in: dir)
        let shard = try LocalShard(path: Self.path(dir, partition), partition: partition,
                                   dimension: dimension, synchronous: configuration.synchronous,
                                   vectorIndex: configuration.vectorIndexPolicy(Self.index(dir)), logKeep: configuration.replicationLog)
        if let session = sessions[partition] { shard.receiving.withLock { $0 = (session, [:]) } }
        if let base = bases[Self.key(collection, partition)] {
            do { try await shard.setBase(seq: base.seq, version: base.version) } catch { throw RagError(from: error) }
        }
        shards[Self.key(collection, partition)] = shard
        return shard
    }

    static func path(_ dir: String, _ partition: Int) -> String { String(format: "%@/p%03d.sqlite", dir, partition) }

    public func all() -> [LocalShard] { Array(shards.values) }

    // MARK: placement fence and partition moves

    /// Refuses a request routed by a placement older than the fence.
    public nonisolated func checkFence(_ version: UInt64) throws(RagError) {
        let f = fence.load(ordering: .acquiring)
        guard version == 0 || Int64(version) >= f else {
            throw RagError(.aborted, "\(Placement.staleMarker): version \(version) is older than this node's fence \(f); read the placement again")
        }
    }

    /// Raises the fence (never lowers it); returns it.
    @discardableResult
    public func raiseFence(_ version: Int64) throws(RagError) -> Int64 {
        let old = fence.load(ordering: .acquiring)
        guard version > old else { return old }
        do { try "\(version)\n".write(toFile: fencePath, atomically: true, encoding: .utf8) } catch {
            throw RagError(.unavailable, "cannot record the placement fence: \(error.localizedDescription)")
        }
        fence.store(version, ordering: .releasing)
        return version
    }

    /// Every collection's copy of logical partition `partition` here.
    public func partition(_ partition: Int) -> [(collection: String, shard: LocalShard)] {
        shards.compactMap { key, shard in
            guard shard.partition == partition, let slash = key.lastIndex(of: "/") else { return nil }
            return (String(key[..<slash]), shard)
        }.sorted { $0.collection < $1.collection }
    }

    /// What a coordinator tells a collection's writes (from placement.json).
    public func placement(of collection: String) -> ShardPlacement {
        ShardPlacement.load(configuration.dataDirectory + "/collections/" + collection) ?? ShardPlacement()
    }

    /// Opens (or keeps) a receive session on logical partition `partition`;
    /// returns whether it was open already. `clear`: a new move, so any copy
    /// left here by an earlier one is deleted first.
    /// `bases`: per collection, the source's last entry before the copy; the
    /// copy's log replay continues from there.
    public func beginReceive(_ partition: Int, session: String, clear: Bool,
                             bases: [(collection: String, seq: UInt64, version: UInt64)] = []) async throws(RagError) -> Bool {
        if sessions[partition] == session { return true }
        if clear { try await drop(partition) }
        sessions[partition] = session
        for b in bases { self.bases[Self.key(b.collection, partition)] = (b.seq, b.version) }
        for (collection, s) in self.partition(partition) {
            s.receiving.withLock { $0 = (session, [:]) }
            if let b = self.bases[Self.key(collection, partition)] {
                do { try await s.setBase(seq: b.seq, version: b.version) } catch { throw RagError(from: error) }
            }
        }
        return false
    }

    public func endReceive(_ partition: Int, session: String) {
        guard sessions[partition] == session else { return }
        sessions[partition] = nil
        bases = bases.filter { !$0.key.hasSuffix("/\(partition)") }
        for (_, s) in self.partition(partition) { s.receiving.withLock { $0 = nil } }
    }

    public func session(_ partition: Int) -> String? { sessions[partition] }

    /// Closes and deletes every collection's copy of logical partition `partition`.
    @discardableResult
    public func drop(_ partition: Int) async throws(RagError) -> Int {
        let held = self.partition(partition)
        for (collection, shard) in held {
            shards[Self.key(collection, partition)] = nil
            await shard.close()
            let base = Self.path(configuration.dataDirectory + "/collections/" + collection, partition)
            LocalShard.removeVectorFiles(of: base, keeping: [])
            for suffix in ["", "-wal", "-shm", "-hnsw", "-image"] where FileManager.default.fileExists(atPath: base + suffix) {
                do { try FileManager.default.removeItem(atPath: base + suffix) } catch {
                    throw RagError(.internal, "cannot delete a moved partition's file: \(error.localizedDescription)")
                }
            }
        }
        return held.count
    }
}

/// What a coordinator says of a collection with each shard write, and what a
/// shard node keeps of it (`placement.json` beside the partitions). Empty or 0:
/// not said (a coordinator from before this check); then nothing is compared.
public struct ShardPlacement: Sendable, Hashable, Codable {
    public var embedder = ""
    public var partitions = 0

    public init(embedder: String = "", partitions: Int = 0) {
        self.embedder = embedder
        self.partitions = partitions
    }

    static func load(_ dir: String) -> ShardPlacement? {
        guard let data = FileManager.default.contents(atPath: dir + "/placement.json") else { return nil }
        return try? JSONDecoder().decode(ShardPlacement.self, from: data)
    }

    func check(against stored: ShardPlacement?, collection: String) throws(RagError) {
        guard let stored else { return }
        if !embedder.isEmpty, !stored.embedder.isEmpty, embedder != stored.embedder {
            throw .failedPrecondition("collection \(collection) here holds vectors of embedder \(stored.embedder.debugDescription), not \(embedder.debugDescription)")
        }
        if partitions > 0, stored.partitions > 0, partitions != stored.partitions {
            throw .failedPrecondition("collection \(collection) here is placed over \(stored.partitions) partitions, not \(partitions)")
        }
    }

    /// Records what was not known yet (never changes what was).
    func record(in dir: String) throws(RagError) {
        let stored = Self.load(dir)
        var merged = stored ?? ShardPlacement()
        if merged.embedder.isEmpty { merged.embedder = embedder }
        if merged.partitions == 0 { merged.partitions = partitions }
        guard merged != stored, merged != ShardPlacement() else { return }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try JSONEncoder().encode(merged).write(to: URL(fileURLWithPath: dir + "/placement.json"), options: .atomic)
        } catch {
            throw RagError(.internal, "cannot record the placement of \(dir): \(error)")
        }
    }
}
