import Foundation

/// A throwaway `redis-server` on a free loopback port (no persistence).
public final class RedisProcess: @unchecked Sendable {
    public let port: Int
    let process = Process()

    public init() throws {
        port = try Self.freePort()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning", "--enable-debug-command", "yes"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 {
            if (try? RawConnection(port: port, timeoutSeconds: 1)) != nil { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw NSError(domain: "RedisProcess", code: 1, userInfo: [NSLocalizedDescriptionKey: "redis-server did not start on \(port)"])
    }

    /// Runs a redis-cli command against this server and returns its output.
    @discardableResult
    public func cli(_ args: String...) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        p.arguments = ["-p", "\(port)"] + args
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        for _ in 0..<500 where p.isRunning { usleep(10_000) }
        return String(decoding: data, as: UTF8.self)
    }

    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        // Poll rather than waitUntilExit, which can hang off the main thread here.
        for _ in 0..<500 where process.isRunning { usleep(10_000) }
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
