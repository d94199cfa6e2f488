import Foundation

/// A throwaway single-member etcd (Debian's etcd-server) on free loopback ports,
/// with its data in a temporary directory.
public final class EtcdProcess: @unchecked Sendable {
    public let port: Int
    public let peerPort: Int
    public let dataDirectory: String
    private(set) var process: ChildProcess!

    public var endpoint: String { "127.0.0.1:\(port)" }

    public init() throws {
        // Never a port another test's etcd got: a kernel-chosen free port is free
        // until etcd binds it, so two tests starting etcd at once could be handed
        // the same one; the loser's /health check then reached the winner's etcd,
        // and one test's coordinators read the other's API keys (a CI failure:
        // "this server requires an API key"). Nor one a stopped etcd had, since its
        // clients keep calling it.
        port = StablePort.reserve()
        peerPort = StablePort.reserve()
        dataDirectory = makeTemporaryDirectory("ragd-etcd")
        let client = "http://127.0.0.1:\(port)", peer = "http://127.0.0.1:\(peerPort)"
        process = try ChildProcess("/usr/bin/etcd", [
            "--name", "test", "--data-dir", dataDirectory, "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "test=\(peer)",
            "--log-level", "error", "--logger", "zap"])
        // Serving once a key read answers (the port opens before the member is ready).
        for _ in 0..<500 {
            if ready() { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        stop()
        throw NSError(domain: "EtcdProcess", code: 1, userInfo: [NSLocalizedDescriptionKey: "etcd did not start on \(port)"])
    }

    /// Asks /health over a socket of our own (see `httpGet`).
    func ready() -> Bool {
        guard process.isRunning, let r = try? httpGet(port: port, path: "/health", timeoutSeconds: 1) else { return false }
        return String(decoding: r.body, as: UTF8.self).contains("\"health\":\"true\"")
    }

    /// SIGSTOP: etcd hangs (connections open, no answers), the nastiest outage.
    public func pause() { process.signal(SIGSTOP) }
    public func resume() { process.signal(SIGCONT) }

    /// SIGKILL (a dead dependency for fault tests) or teardown.
    public func stop() {
        if process.isRunning {
            process.signal(SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }
}

extension EtcdProcess {
    /// `init` on a thread of its own.
    public static func launch() async throws -> EtcdProcess {
        try await onThread { try EtcdProcess() }
    }
}
