import Foundation

/// A throwaway single-member etcd (Debian's etcd-server) on free loopback ports,
/// with its data in a temporary directory.
public final class EtcdProcess: @unchecked Sendable {
    public let port: Int
    public let peerPort: Int
    public let dataDirectory: String
    let process = Process()

    public var endpoint: String { "127.0.0.1:\(port)" }

    public init() throws {
        port = try RedisProcess.freePort()
        peerPort = try RedisProcess.freePort()
        dataDirectory = makeTemporaryDirectory("ragd-etcd")
        let client = "http://127.0.0.1:\(port)", peer = "http://127.0.0.1:\(peerPort)"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/etcd")
        process.arguments = ["--name", "test", "--data-dir", dataDirectory, "--listen-client-urls", client, "--advertise-client-urls", client,
                             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "test=\(peer)",
                             "--log-level", "error", "--logger", "zap"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Serving once a key read answers (the port opens before the member is ready).
        for _ in 0..<500 {
            if ready() { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        stop()
        throw NSError(domain: "EtcdProcess", code: 1, userInfo: [NSLocalizedDescriptionKey: "etcd did not start on \(port)"])
    }

    /// Asks /health with curl: URLSession (FoundationNetworking) must not run in a
    /// test process full of NIO sockets — tearing down its sessions has been seen
    /// to close descriptors it does not own (swift-corelibs-foundation #3286).
    func ready() -> Bool {
        guard process.isRunning else { return false }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["-s", "-m", "1", "http://127.0.0.1:\(port)/health"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        for _ in 0..<200 where p.isRunning { usleep(10_000) }
        return String(decoding: data, as: UTF8.self).contains("\"health\":\"true\"")
    }

    /// SIGKILL (a dead dependency for fault tests) or teardown.
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            for _ in 0..<500 where process.isRunning { usleep(10_000) }
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
