import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP server on a free loopback port that misbehaves on purpose, to test
/// how clients cope: it reads one request frame, then does `behaviour`.
public final class FakeServer: @unchecked Sendable {
    public enum Behaviour: Sendable {
        /// Never answers (the connection stays open).
        case silent
        /// Closes the connection after reading the request.
        case hangUp
        /// Sends these bytes, then closes.
        case reply([UInt8])
    }

    public let port: Int
    let listener: Int32
    let behaviour: Behaviour
    private var open: [Int32] = []
    private let lock = NSLock()
    private var stopped = false

    public init(_ behaviour: Behaviour) throws {
        self.behaviour = behaviour
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }
        guard bound == 0, listen(listener, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        start()
    }

    private func start() {
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 { return }
            lock.lock()
            if stopped { lock.unlock(); close(fd); return }
            open.append(fd)
            lock.unlock()
            let t = Thread { [self] in serve(fd) }
            t.start()
        }
    }

    func readExactly(_ fd: Int32, _ n: Int) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: n)
        var off = 0
        while off < n {
            let r = buf[off...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if r <= 0 { return nil }
            off += r
        }
        return buf
    }

    func serve(_ fd: Int32) {
        guard let header = readExactly(fd, 4) else { return }
        let length = header.reduce(0) { $0 << 8 | Int($1) }
        guard length < 1 << 24, readExactly(fd, length) != nil else { return }
        switch behaviour {
        case .silent:
            return  // keep the socket open until stop()
        case .hangUp:
            shutdown(fd, Int32(SHUT_RDWR))
        case .reply(let bytes):
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            shutdown(fd, Int32(SHUT_RDWR))
        }
    }

    /// Idempotent: a second call must not close a descriptor number reused since.
    public func stop() {
        lock.lock()
        if stopped { lock.unlock(); return }
        stopped = true
        let fds = open
        open = []
        lock.unlock()
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    deinit { stop() }
}
