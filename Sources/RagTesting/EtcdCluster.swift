import Foundation
import Synchronization

/// A throwaway three-member etcd cluster on stable loopback ports (so a member
/// restarted with `restart` rejoins with its data), for fault tests.
public final class EtcdCluster: @unchecked Sendable {
    public struct Member: Sendable {
        public var name: String
        public var clientPort: Int
        public var peerPort: Int
        public var dataDirectory: String
    }

    public let members: [Member]
    private let processes: Mutex<[ChildProcess?]>

    /// Every client endpoint, comma-separated (what `--etcd` takes).
    public var endpoints: String { members.map { "127.0.0.1:\($0.clientPort)" }.joined(separator: ",") }

    public init(size: Int = 3) throws {
        let root = makeTemporaryDirectory("ragd-etcd-cluster")
        members = (0..<size).map { i in Member(name: "m\(i)", clientPort: StablePort.reserve(), peerPort: StablePort.reserve(), dataDirectory: "\(root)/m\(i)") }
        processes = Mutex(Array(repeating: nil, count: size))
        for i in members.indices { try start(i) }
        for _ in 0..<1000 {
            if members.indices.allSatisfy(ready) { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        stop()
        throw NSError(domain: "EtcdCluster", code: 1, userInfo: [NSLocalizedDescriptionKey: "the etcd cluster did not become healthy"])
    }

    func start(_ i: Int) throws {
        let m = members[i]
        let initial = members.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
        let client = "http://127.0.0.1:\(m.clientPort)", peer = "http://127.0.0.1:\(m.peerPort)"
        let p = try ChildProcess("/usr/bin/etcd", [
            "--name", m.name, "--data-dir", m.dataDirectory, "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", initial,
            "--initial-cluster-state", "new", "--initial-cluster-token", "ragd-test",
            "--heartbeat-interval", "50", "--election-timeout", "500", "--log-level", "error", "--logger", "zap"])
        processes.withLock { $0[i] = p }
    }

    func ready(_ i: Int) -> Bool {
        guard let r = try? httpGet(port: members[i].clientPort, path: "/health", timeoutSeconds: 1) else { return false }
        return String(decoding: r.body, as: UTF8.self).contains("\"health\":\"true\"")
    }

    /// kill -9 of member `i`.
    public func kill(_ i: Int) {
        guard let p = processes.withLock({ $0[i] }), p.isRunning else { return }
        p.signal(SIGKILL)
        p.waitUntilExit()
    }

    /// kill -9, then the same member again on its data (it rejoins the cluster).
    public func restart(_ i: Int) throws {
        kill(i)
        try start(i)
    }

    public func stop() {
        for i in members.indices { kill(i) }
        if let first = members.first { try? FileManager.default.removeItem(atPath: (first.dataDirectory as NSString).deletingLastPathComponent) }
    }

    deinit { stop() }
}
