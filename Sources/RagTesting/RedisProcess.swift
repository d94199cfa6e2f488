import Foundation

/// A throwaway `redis-server` on a free loopback port (no persistence).
public final class RedisProcess: @unchecked Sendable {
    public let port: Int
    private(set) var process: ChildProcess!

    public init() throws {
        port = try Self.freePort()
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

    /// Asks the kernel for a free port by binding port 0.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

#if canImport(Glibc)
import Glibc
#endif
