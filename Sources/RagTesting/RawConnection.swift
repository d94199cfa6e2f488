import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A plain blocking TCP socket, for sending bytes no well-behaved client would.
public final class RawConnection: @unchecked Sendable {
    private(set) var fd: Int32

    public init(port: Int, timeoutSeconds: Int = 60) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        // Bounds connect() too (a server whose backlog is full never completes it).
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        // Closed here and marked, because deinit also runs for an instance whose
        // init throws after initialising every property: closing the same number
        // twice would close a descriptor another thread has opened meanwhile.
        guard rc == 0 else { close(fd); fd = -1; throw POSIXError(.ECONNREFUSED) }
    }

    public func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    /// Reads exactly `count` bytes, or nil on EOF/timeout.
    public func read(_ count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var off = 0
        while off < count {
            let n = out[off...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            off += n
        }
        return out
    }

    /// Reads one length-prefixed frame body.
    public func readFrame() -> [UInt8]? {
        guard let header = read(4) else { return nil }
        let length = header.reduce(0) { $0 << 8 | Int($1) }
        return read(length)
    }

    /// True when the peer has closed the connection (EOF within the timeout).
    public func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    deinit { if fd >= 0 { close(fd) } }
}

extension RawConnection {
    // The blocking calls on a thread of their own: a test blocked in recv on one of
    // the cooperative threads can starve the in-process server it is waiting for.

    /// `send` off the cooperative pool.
    public func write(_ bytes: [UInt8]) async {
        _ = try? await onThread { self.send(bytes) }
    }

    /// `readFrame` off the cooperative pool.
    public func nextFrame() async -> [UInt8]? {
        (try? await onThread { self.readFrame() }) ?? nil
    }

    /// `read` off the cooperative pool.
    public func next(_ count: Int) async -> [UInt8]? {
        (try? await onThread { self.read(count) }) ?? nil
    }

    /// `isClosedByPeer` off the cooperative pool.
    public func closedByPeer() async -> Bool {
        (try? await onThread { self.isClosedByPeer() }) ?? false
    }
}
