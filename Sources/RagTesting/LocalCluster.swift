import Foundation
import RagClient
import Synchronization

/// A coordinator and `shards × replicas` shard processes on loopback, each with
/// its own data directory, for tests and benchmarks of the distributed mode.
public final class LocalCluster: @unchecked Sendable {
    public private(set) var nodes: [[RagdProcess]] = []
    public let coordinator: RagdProcess
    public let root: String
    public let clusterFile: String
    private let extra = Mutex<[RagdProcess]>([])

    /// etcd endpoint the coordinators share (nil: the cluster file alone).
    public let etcd: String?
    /// Arguments every shard node gets beyond the defaults (kept for restarts).
    let shardExtra: [String]

    /// With `etcd`, the first coordinator publishes the layout there and more
    /// coordinators can join with `addCoordinator()`.
    public init(shards: Int, replicas: Int, writeQuorum: Int? = nil, etcd: String? = nil, coordinatorArguments: [String] = [],
                shardArguments: [String] = []) throws {
        self.etcd = etcd
        shardExtra = shardArguments
        root = makeTemporaryDirectory("ragd-cluster")
        for s in 0..<shards {
            var row: [RagdProcess] = []
            for r in 0..<replicas {
                row.append(try RagdProcess(dataDirectory: "\(root)/shard\(s)-\(r)", port: StablePort.reserve(),
                                          extraArguments: Self.shardArguments(internalPort: StablePort.reserve(), etcd: etcd) + shardArguments))
            }
            nodes.append(row)
        }
        let entries = nodes.enumerated().map { s, row in
            "{\"id\": \(s), \"replicas\": [" + row.map { "\"127.0.0.1:\($0.internalPort)\"" }.joined(separator: ", ") + "]}"
        }
        let quorum = writeQuorum.map { ", \"write_quorum\": \($0)" } ?? ""
        clusterFile = root + "/cluster.json"
        try "{\"replication_factor\": \(replicas)\(quorum), \"shards\": [\(entries.joined(separator: ", "))]}"
            .write(toFile: clusterFile, atomically: true, encoding: .utf8)
        coordinator = try RagdProcess(dataDirectory: root + "/coordinator", port: StablePort.reserve(), extraArguments: ["--role", "coordinator", "--cluster", clusterFile]
                                  + (etcd.map { ["--etcd", $0] } ?? []) + TestCertificates.shared.clusterFlags
                                  + (etcd != nil && !coordinatorArguments.contains("--logical-partitions") ? ["--logical-partitions", "\(Self.testPartitions)"] : [])
                                  + coordinatorArguments)
    }

    /// Logical partitions of a test cluster's placement (production's 64 would
    /// make every test write fsync dozens of files per node, and the fsync load
    /// of a few such clusters stalls everything else the test run does).
    public static let testPartitions = 8

    /// A shard node with an internal listener under mutual TLS (the cluster's certificates).
    public static func shardArguments(internalPort: Int = 0, etcd: String? = nil) -> [String] {
        ["--role", "shard", "--internal-port", "\(internalPort)"] + TestCertificates.shared.clusterFlags + (etcd.map { ["--etcd", $0] } ?? [])
    }

    /// Another coordinator of the same cluster that knows only etcd (no cluster file).
    public func addCoordinator(_ name: String, extraArguments: [String] = []) throws -> RagdProcess {
        guard let etcd else { throw NSError(domain: "LocalCluster", code: 1, userInfo: [NSLocalizedDescriptionKey: "no etcd"]) }
        return try RagdProcess(dataDirectory: "\(root)/\(name)",
                               extraArguments: ["--role", "coordinator", "--etcd", etcd] + TestCertificates.shared.clusterFlags + extraArguments)
    }

    public func client(timeout: Duration? = .seconds(30)) -> RagClient { coordinator.client(timeout: timeout) }

    /// One more shard node registered in etcd (not a member until `add-node`);
    /// stopped with the cluster.
    public func addShardNode(_ name: String) throws -> RagdProcess {
        let node = try RagdProcess(dataDirectory: "\(root)/\(name)", port: StablePort.reserve(),
                                   extraArguments: Self.shardArguments(internalPort: StablePort.reserve(), etcd: etcd) + shardExtra)
        extra.withLock { $0.append(node) }
        return node
    }

    public func kill(shard: Int, replica: Int) { nodes[shard][replica].kill9() }

    /// Restarts a replica on its old port and data directory.
    public func restart(shard: Int, replica: Int) throws {
        let old = nodes[shard][replica]
        nodes[shard][replica] = try RagdProcess(dataDirectory: old.dataDirectory, port: old.port,
                                                extraArguments: Self.shardArguments(internalPort: old.internalPort, etcd: etcd) + shardExtra)
    }

    /// Tears the cluster down at once (SIGKILL: this runs in `defer`s on the
    /// cooperative pool, where a graceful shutdown's wait would stall other tests).
    public func stop() {
        if coordinator.isRunning { coordinator.kill9() }
        for row in nodes { for n in row where n.isRunning { n.kill9() } }
        for n in extra.withLock({ $0 }) where n.isRunning { n.kill9() }
        try? FileManager.default.removeItem(atPath: root)
    }
}
