import Foundation
import RagClient
import Synchronization

/// A replicated cluster for fault tests: a three-member etcd, `nodes` shard
/// nodes added to an empty placement (replication `replication`), and
/// `coordinators` coordinators, all on stable ports so that a process killed
/// and restarted comes back at the same address with its data.
public final class ChaosCluster: @unchecked Sendable {
    public let etcd: EtcdCluster
    public let root: String
    struct Spec {
        var dataDirectory: String
        var port: Int
        var internalPort: Int
        var arguments: [String]
    }
    private let nodeSpecs: [Spec]
    private let coordinatorSpecs: [Spec]
    private let nodes: Mutex<[RagdProcess]>
    private let coordinators: Mutex<[RagdProcess]>

    public init(nodes n: Int, coordinators c: Int, replication: Int, partitions: Int, shardArguments: [String] = []) throws {
        let etcd = try EtcdCluster()
        let root = makeTemporaryDirectory("ragd-chaos")
        self.etcd = etcd
        self.root = root
        nodeSpecs = (0..<n).map { i in
            let internalPort = StablePort.reserve()
            return Spec(dataDirectory: "\(root)/node\(i)", port: StablePort.reserve(), internalPort: internalPort,
                        arguments: LocalCluster.shardArguments(internalPort: internalPort, etcd: etcd.endpoints) + shardArguments)
        }
        coordinatorSpecs = (0..<c).map { i in
            Spec(dataDirectory: "\(root)/coordinator\(i)", port: StablePort.reserve(), internalPort: 0,
                 arguments: ["--role", "coordinator", "--etcd", etcd.endpoints, "--replication", "\(replication)", "--logical-partitions", "\(partitions)",
                             "--anti-entropy-interval", "1"]
                    + TestCertificates.shared.clusterFlags)
        }
        nodes = Mutex(try nodeSpecs.map(Self.start))
        coordinators = Mutex(try coordinatorSpecs.map(Self.start))
    }

    /// Starts a process; a restart right after a kill may find its port in
    /// TIME_WAIT or etcd electing, so it is tried a few times.
    static func start(_ s: Spec) throws -> RagdProcess {
        var attempt = 0
        while true {
            do { return try RagdProcess(dataDirectory: s.dataDirectory, port: s.port, extraArguments: s.arguments) } catch where attempt < 3 {
                attempt += 1
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }

    public var nodeCount: Int { nodeSpecs.count }
    public var coordinatorCount: Int { coordinatorSpecs.count }
    public func node(_ i: Int) -> RagdProcess { nodes.withLock { $0[i] } }
    public func coordinator(_ i: Int) -> RagdProcess { coordinators.withLock { $0[i] } }
    /// A shard node's internal address, as the placement names it.
    public func address(_ i: Int) -> String { "127.0.0.1:\(nodeSpecs[i].internalPort)" }
    public func client(_ coordinator: Int, timeout: Duration? = .seconds(10)) -> RagClient {
        RagClient(host: "127.0.0.1", port: coordinatorSpecs[coordinator].port, defaultTimeout: timeout)
    }

    public func killNode(_ i: Int) { node(i).kill9() }
    public func restartNode(_ i: Int) throws {
        let n = try Self.start(nodeSpecs[i])
        nodes.withLock { $0[i] = n }
    }
    public func killCoordinator(_ i: Int) { coordinator(i).kill9() }
    public func restartCoordinator(_ i: Int) throws {
        let c = try Self.start(coordinatorSpecs[i])
        coordinators.withLock { $0[i] = c }
    }

    /// The last lines of every process's log and whether it runs, for a failed run's report.
    public func logs(lines: Int = 15) -> String {
        var out: [String] = []
        for (name, p) in coordinators.withLock({ $0 }).enumerated().map({ ("coordinator\($0)", $1) }) + nodes.withLock({ $0 }).enumerated().map({ ("node\($0)", $1) }) {
            out.append("== \(name) (\(p.isRunning ? "running" : "exited")):")
            let log = p.log.split(separator: "\n")
            // A crash: its reason and the frames that name Ragd's code.
            if !p.isRunning, let fatal = log.firstIndex(where: { $0.contains("Fatal error") || $0.contains("Crash") }) {
                out.append(contentsOf: log[max(0, fatal - 3)...].filter { !$0.contains(" in libswift") }.prefix(60).map(String.init))
            } else {
                out.append(contentsOf: log.suffix(lines).map(String.init))
            }
        }
        return out.joined(separator: "\n")
    }

    public func stop() {
        for n in nodes.withLock({ $0 }) where n.isRunning { n.resume(); n.kill9() }
        for c in coordinators.withLock({ $0 }) where c.isRunning { c.kill9() }
        etcd.stop()
        try? FileManager.default.removeItem(atPath: root)
    }
}

extension ChaosCluster {
    /// `init` on a thread of its own.
    public static func launch(nodes: Int, coordinators: Int, replication: Int, partitions: Int, shardArguments: [String] = []) async throws -> ChaosCluster {
        try await onThread { try ChaosCluster(nodes: nodes, coordinators: coordinators, replication: replication, partitions: partitions,
                                              shardArguments: shardArguments) }
    }

    public func relaunchNode(_ i: Int) async throws { try await onThread { try self.restartNode(i) } }
    public func relaunchCoordinator(_ i: Int) async throws { try await onThread { try self.restartCoordinator(i) } }
    public func restartEtcd(_ i: Int) async throws { try await onThread { try self.etcd.restart(i) } }
}
