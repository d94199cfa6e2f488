import Foundation
import RagClient

/// A `ragd serve` child process on a free loopback port, for tests that need a
/// real process: restarts, `kill -9`, signals.
public final class RagdProcess: @unchecked Sendable {
    public let dataDirectory: String
    public private(set) var port = 0
    /// A shard node's internal listener (shard RPCs, mutual TLS); 0 when none.
    public private(set) var internalPort = 0
    private(set) var process: ChildProcess!
    /// The server's stderr goes to a file: a pipe nobody reads would fill up and
    /// block its logging, and the file is there to read when a test fails.
    public let logPath = NSTemporaryDirectory() + "/ragd-\(UUID().uuidString).log"

    /// The ragd binary: $RAGD_BIN, else next to the running test bundle.
    public static var binary: String {
        if let p = ProcessInfo.processInfo.environment["RAGD_BIN"] { return p }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        }
        // Inside an .xctest bundle on macOS the binary is three levels up; on Linux it is a sibling.
        for candidate in [dir, dir.deletingLastPathComponent(), dir.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("ragd").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return dir.appendingPathComponent("ragd").path
    }

    /// Starts the server and waits for its "listening on" line. `environment`
    /// adds variables (e.g. `RAGD_FAILPOINT`) to the inherited ones.
    public init(dataDirectory: String, port: Int = 0, extraArguments: [String] = [], environment: [String: String] = [:]) throws {
        self.dataDirectory = dataDirectory
        FileManager.default.createFile(atPath: logPath, contents: nil)
        // Tests rank with the built-in hashing embedder unless they ask for
        // another: `ragd serve` alone picks MiniLM when its weights are installed.
        let embedder = extraArguments.contains("--embedder") ? [] : ["--embedder", "hashing"]
        process = try ChildProcess(Self.binary, ["serve", "--port", "\(port)", "--data-dir", dataDirectory, "--log-level", "warning", "--metrics-port", "0"] + embedder + extraArguments,
                                   environment: environment.isEmpty ? nil : ProcessInfo.processInfo.environment.merging(environment) { $1 },
                                   stdout: .pipe, stderr: .file(logPath))
        let deadline = Date().addingTimeInterval(60)
        var buffer = Data()
        let handle = process.output!
        while Date() < deadline {
            // A server that hangs before its first line keeps the pipe open:
            // wait for data with the deadline, never in a read that cannot end.
            var ready = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
            let ms = Int32(max(0, min(1000, deadline.timeIntervalSinceNow * 1000)))
            guard poll(&ready, 1, ms) >= 0 || errno == EINTR else { break }
            if ready.revents == 0 { continue }
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            let lines = String(decoding: buffer, as: UTF8.self).split(separator: "\n")
            if let line = lines.first(where: { $0.hasPrefix("ragd internal listener on ") }), let p = Int(line.split(separator: ":").last ?? "") {
                internalPort = p
            }
            if let line = lines.first(where: { $0.hasPrefix("ragd listening on ") }), let p = Int(line.split(separator: ":").last ?? "") {
                self.port = p
                return
            }
        }
        let running = process.isRunning
        process.terminate()
        Thread.sleep(forTimeInterval: 0.2)
        if process.isRunning { process.signal(SIGKILL) }
        let err = log
        throw NSError(domain: "RagdProcess", code: 1, userInfo: [NSLocalizedDescriptionKey:
            "ragd did not start\(running ? " within 60 s (still running)" : ""): \(err)"])
    }

    /// What the server wrote to stderr (its log), at most the last 256 KiB.
    public var log: String {
        let d = FileManager.default.contents(atPath: logPath) ?? Data()
        return String(decoding: d.suffix(256 * 1024), as: UTF8.self)
    }

    public func client(timeout: Duration? = .seconds(30), apiKey: String? = nil, tls: ClientTLS? = nil) -> RagClient {
        RagClient(host: "127.0.0.1", port: port, defaultTimeout: timeout, apiKey: apiKey, tls: tls)
    }

    /// A client of a shard node's internal listener, presenting the test cluster's
    /// client certificate unless `tls` says otherwise.
    public func internalClient(timeout: Duration? = .seconds(30), tls: ClientTLS? = TestCertificates.shared.client("client")) -> RagClient {
        RagClient(host: "127.0.0.1", port: internalPort, defaultTimeout: timeout, tls: tls)
    }

    public var isRunning: Bool { process.isRunning }
    public var pid: Int32 { process.pid }

    /// SIGSTOP: a paused process (connections open, nothing answers).
    public func pause() { process.signal(SIGSTOP) }
    public func resume() { process.signal(SIGCONT) }

    /// SIGKILL: no chance to flush or close anything.
    public func kill9() {
        process.signal(SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then wait for a graceful exit; returns the exit status.
    @discardableResult
    public func terminate() -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        process.terminate()
        return process.waitUntilExit()
    }

    deinit {
        if process.isRunning { process.signal(SIGKILL); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: logPath)
    }
}
