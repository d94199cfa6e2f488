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

    public func openOrCreate(_ collection: String, _ partition: Int, dimension: Int) throws(RagError) -> LocalShard {
        if let s = try existing(collection, partition) {
            guard s.dimension == dimension else {
                throw .failedPrecondition("collection \(collection) stores \(s.dimension)-dimensional vectors, not \(dimension)")
            }
            return s
        }
        guard (0...Self.maxPartition).contains(partition) else { throw .invalidArgument("partition \(partition) is outside 0...\(Self.maxPartition)") }
        guard (1...8192).contains(dimension) else { throw .invalidArgument("dimension \(dimension) out of range") }
        let dir = configuration.dataDirectory + "/collections/" + collection
        let dimensionFile = dir + "/dimension"
        if FileManager.default.fileExists(atPath: dimensionFile) {
            // The collection exists here: its dimension is fixed, never rewritten.
            let stored = Self.dimension(dir)
            guard stored == dimension else { throw .failedPrecondition("collection \(collection) stores \(stored)-dimensional vectors, not \(dimension)") }
        } else {
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try? "\(dimension)\n".write(toFile: dimensionFile, atomically: true, encoding: .utf8)
        }
        let shard = try LocalShard(path: String(format: "%@/p%03d.sqlite", dir, partition), partition: partition,
                                   dimension: dimension, synchronous: configuration.synchronous)
        shards[Self.key(collection, partition)] = shard
        return shard
    }

    public func all() -> [LocalShard] { Array(shards.values) }
}
