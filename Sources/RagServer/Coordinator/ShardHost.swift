import Foundation
import RagCore
import RagEngine
import RagStore

/// The partitions a shard node hosts, by (collection, partition). A partition
/// is opened from disk at start or created on its first write; the coordinator
/// owns the catalog, the shard only stores and searches.
public actor ShardHost {
    let configuration: RagServerConfiguration
    private var shards: [String: LocalShard] = [:]

    public init(configuration: RagServerConfiguration) throws(RagError) {
        self.configuration = configuration
        let root = configuration.dataDirectory + "/collections"
        let fm = FileManager.default
        for collection in (try? fm.contentsOfDirectory(atPath: root)) ?? [] {
            for file in (try? fm.contentsOfDirectory(atPath: root + "/" + collection)) ?? [] where file.hasPrefix("p") && file.hasSuffix(".sqlite") {
                guard let p = Int(file.dropFirst().dropLast(7)) else { continue }
                let dimension = Self.dimension(root + "/" + collection)
                shards[Self.key(collection, p)] = try LocalShard(path: root + "/" + collection + "/" + file, partition: p,
                                                                  dimension: dimension, synchronous: configuration.synchronous)
            }
        }
    }

    static func key(_ collection: String, _ partition: Int) -> String { "\(collection)/\(partition)" }

    /// The dimension recorded beside a collection's partitions.
    static func dimension(_ dir: String) -> Int {
        (try? String(contentsOfFile: dir + "/dimension", encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 384
    }

    /// The partition, or nil when nothing was ever written to it here.
    public func existing(_ collection: String, _ partition: Int) throws(RagError) -> LocalShard? {
        try CollectionRegistry.validateName(collection)
        return shards[Self.key(collection, partition)]
    }

    /// Partition numbers a shard accepts: placement is `hash mod P` with P far below this.
    public static let maxPartition = 4095

    /// The partition a write goes to, checked against what this node stores of
    /// the collection: dimension, embedder and placement (partition count). The
    /// first write records them; a later one that disagrees is refused.
    public func openOrCreate(_ collection: String, _ partition: Int, dimension: Int,
                             placement: ShardPlacement = ShardPlacement()) throws(RagError) -> LocalShard {
        try CollectionRegistry.validateName(collection)
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
            try? "\(dimension)\n".write(toFile: dimensionFile, atomically: true, encoding: .utf8)
        }
        try placement.record(in: dir)
        let shard = try LocalShard(path: String(format: "%@/p%03d.sqlite", dir, partition), partition: partition,
                                   dimension: dimension, synchronous: configuration.synchronous)
        shards[Self.key(collection, partition)] = shard
        return shard
    }

    public func all() -> [LocalShard] { Array(shards.values) }
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
