import Foundation
import RagCore

/// A cluster file (JSON): every shard id with its replicas' addresses.
///
///     {"replication_factor": 2, "write_quorum": 2,
///      "shards": [{"id": 0, "replicas": ["10.0.0.1:7878", "10.0.0.2:7878"]}, ...]}
///
/// Shard ids are 0..<S and play the role of partitions: a document lives on shard
/// `StableHash.partition(collection, id, S)`, exactly where a single node with S
/// partitions puts it. `write_quorum` (default: every replica) is how many replicas
/// must commit before a write is acknowledged.
public struct ClusterConfiguration: Codable, Sendable, Hashable {
    public struct ShardEntry: Codable, Sendable, Hashable {
        public var id: Int
        public var replicas: [String]
    }

    public var shards: [ShardEntry]
    public var replicationFactor: Int?
    public var writeQuorum: Int?

    enum CodingKeys: String, CodingKey {
        case shards
        case replicationFactor = "replication_factor"
        case writeQuorum = "write_quorum"
    }

    public init(shards: [ShardEntry], replicationFactor: Int? = nil, writeQuorum: Int? = nil) {
        self.shards = shards
        self.replicationFactor = replicationFactor
        self.writeQuorum = writeQuorum
    }

    public static func load(_ path: String) throws(RagError) -> ClusterConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else { throw .invalidArgument("cannot read cluster file \(path)") }
        let c: ClusterConfiguration
        do { c = try JSONDecoder().decode(ClusterConfiguration.self, from: data) } catch {
            throw .invalidArgument("cluster file \(path) is not valid: \(error)")
        }
        try c.validate()
        return c
    }

    public func validate() throws(RagError) {
        guard !shards.isEmpty else { throw .invalidArgument("cluster: no shards") }
        guard shards.map(\.id).sorted() == Array(0..<shards.count) else { throw .invalidArgument("cluster: shard ids must be 0..<\(shards.count), each once") }
        for s in shards {
            guard !s.replicas.isEmpty else { throw .invalidArgument("cluster: shard \(s.id) has no replicas") }
            for r in s.replicas { _ = try Self.address(r) }
            if let rf = replicationFactor, s.replicas.count != rf {
                throw .invalidArgument("cluster: shard \(s.id) has \(s.replicas.count) replicas, replication_factor is \(rf)")
            }
            if let q = writeQuorum, !(1...s.replicas.count).contains(q) {
                throw .invalidArgument("cluster: write_quorum \(q) impossible for shard \(s.id) with \(s.replicas.count) replicas")
            }
        }
    }

    public static func address(_ text: String) throws(RagError) -> (host: String, port: Int) {
        guard let address = splitHostPort(text) else { throw .invalidArgument("cluster: \(text.debugDescription) is not host:port") }
        return address
    }
}
