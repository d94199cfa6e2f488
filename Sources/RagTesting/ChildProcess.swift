import CRagSpawn
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn, for tests.
///
/// Not Foundation's `Process`: on Linux it emulates close-on-exec by adding one
/// close action per descriptor up to the highest open one, scanned while other
/// threads open and close descriptors; a test process holding ~1,200 of them
/// (in-process servers, their SQLite files, sockets) crashed inside
/// `Process.run()` now and then. Here the child closes everything above stderr
/// with one `closefrom` action (glibc ≥ 2.34), whatever the parent holds.
public final class ChildProcess: @unchecked Sendable {
    public enum Output: Sendable {
        case null
        /// A pipe whose read end is `output` / `errors`.
        case pipe
        /// Appended to this file.
        case file(String)
    }

    public let pid: pid_t
    /// Read ends of `.pipe` outputs.
    public let output: FileHandle?
    public let errors: FileHandle?
    private let lock = NSLock()
    private var status: Int32?

    /// Starts `executable` (a path) with `arguments`; `environment` nil inherits ours.
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
                stdout: Output = .null, stderr: Output = .null) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var parentEnds: [Int32] = []
        var childEnds: [Int32] = []
        func wire(_ o: Output, to fd: Int32) throws -> FileHandle? {
            switch o {
            case .null:
                posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_WRONLY, 0)
                return nil
            case .file(let path):
                posix_spawn_file_actions_addopen(&actions, fd, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
                return nil
            case .pipe:
                var fds: [Int32] = [0, 0]
                guard rag_pipe_cloexec(&fds) == 0 else { throw ChildProcessError.spawn(errno, executable) }
                posix_spawn_file_actions_adddup2(&actions, fds[1], fd)  // dup2 clears close-on-exec
                parentEnds.append(fds[0])
                childEnds.append(fds[1])
                return FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
            }
        }
        output = try wire(stdout, to: 1)
        errors = try wire(stderr, to: 2)
        rag_spawn_addclosefrom(&actions, 3)
        if let directory { rag_spawn_addchdir(&actions, directory) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default signal handling in the child (the test runner may ignore some).
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { env.forEach { free($0) } }
        var child = pid_t()
        let rc = posix_spawn(&child, executable, &actions, &attributes, argv, env)
        for fd in childEnds { close(fd) }
        guard rc == 0 else {
            for fd in parentEnds { close(fd) }
            throw ChildProcessError.spawn(rc, executable)
        }
        pid = child
    }

    /// Reaps the child if it has exited (never blocks).
    public var isRunning: Bool {
        lock.withLock {
            guard status == nil else { return false }
            var s: Int32 = 0
            let r = waitpid(pid, &s, WNOHANG)
            if r == pid { status = s; return false }
            return r == 0
        }
    }

    /// Blocks until the child exits; returns `terminationStatus`.
    @discardableResult
    public func waitUntilExit() -> Int32 {
        lock.withLock {
            while status == nil {
                var s: Int32 = 0
                let r = waitpid(pid, &s, 0)
                if r == pid { status = s } else if r == -1 && errno != EINTR { status = 0 }
            }
        }
        return terminationStatus
    }

    /// The exit code, or the signal that ended the child (as Foundation reports it).
    public var terminationStatus: Int32 {
        let s = lock.withLock { status } ?? 0
        let signal = s & 0x7f
        return signal == 0 ? (s >> 8) & 0xff : signal
    }

    public func signal(_ sig: Int32) {
        if lock.withLock({ status == nil }) { kill(pid, sig) }
    }

    public func terminate() { signal(SIGTERM) }
}

public enum ChildProcessError: Error, CustomStringConvertible {
    case spawn(Int32, String)
    public var description: String {
        switch self {
        case .spawn(let code, let path): return "cannot start \(path): \(String(cString: strerror(code)))"
        }
    }
}

/// Runs a command to completion (blocking: call it on a thread of its own) and
/// returns its exit status, standard output and standard error. A child still
/// running after `timeout` is killed.
public func runChild(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
                     timeout: TimeInterval = 60) throws -> (status: Int32, output: String, errors: String) {
    let p = try ChildProcess(executable, arguments, environment: environment, directory: directory, stdout: .pipe, stderr: .pipe)
    // Drain both pipes at once so a chatty child cannot block on a full one.
    nonisolated(unsafe) var errData = Data()
    let done = DispatchSemaphore(value: 0)
    Thread { errData = p.errors!.readDataToEndOfFile(); done.signal() }.start()
    let killer = DispatchWorkItem { p.signal(SIGKILL) }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
    let outData = p.output!.readDataToEndOfFile()
    done.wait()
    let status = p.waitUntilExit()
    killer.cancel()
    return (status, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// A plain HTTP/1.0 GET on loopback over a socket of our own (blocking). Tests
/// do not use URLSession: FoundationNetworking's session teardown has been seen
/// to close descriptors it does not own, in a process full of NIO sockets.
public func httpGet(port: Int, path: String, timeoutSeconds: Int = 10) throws -> (status: Int, body: Data) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ChildProcessError.spawn(errno, "socket") }
    defer { close(fd) }
    var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard connected == 0 else { throw ChildProcessError.spawn(errno, "connect to port \(port)") }
    let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var response = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        response.append(contentsOf: buffer[0..<n])
    }
    guard let split = response.range(of: Data("\r\n\r\n".utf8)) else { throw ChildProcessError.spawn(EPROTO, "HTTP response from port \(port)") }
    let head = String(decoding: response[..<split.lowerBound], as: UTF8.self)
    let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
    return (status, Data(response[split.upperBound...]))
}
