import Foundation

/// A throwaway `redis-server` on a free loopback port (no persistence).
public final class RedisProcess: @unchecked Sendable {
    public let port: Int
    private(set) var process: ChildProcess!

    public init() throws {
        port = StablePort.reserve()  // not reused within a run (see EtcdProcess)
        process = try ChildProcess("/usr/bin/redis-server", [
            "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning", "--enable-debug-command", "yes"])
        for _ in 0..<200 {
            if (try? RawConnection(port: port, timeoutSeconds: 1)) != nil { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw NSError(domain: "RedisProcess", code: 1, userInfo: [NSLocalizedDescriptionKey: "redis-server did not start on \(port)"])
    }

    /// Runs a redis-cli command against this server and returns its output.
    @discardableResult
    public func cli(_ args: String...) throws -> String {
        try runChild("/usr/bin/redis-cli", ["-p", "\(port)"] + args).output
    }

    public func stop() {
        guard process.isRunning else { return }
        process.signal(SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}

#if canImport(Glibc)
import Glibc
#endif
