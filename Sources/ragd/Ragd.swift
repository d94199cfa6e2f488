import ArgumentParser
import Foundation
import Logging
import RagServer
import ServiceLifecycle

@main
struct Ragd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ragd",
        abstract: "The Ragd retrieval-augmented-generation server.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the Ragd protocol.",
        discussion: """
            Settings come from, in increasing priority: defaults, --config FILE (JSON with the \
            same names as the flags, e.g. {"port": 7000, "data-dir": "/var/lib/ragd"}), \
            RAGD_* environment variables (RAGD_HOST, RAGD_PORT, RAGD_DATA_DIR, RAGD_PARTITIONS, \
            RAGD_MAX_FRAME_SIZE, RAGD_SYNCHRONOUS, RAGD_LOG_LEVEL), then flags.
            """)

    @Option(help: "A JSON configuration file.") var config: String?
    @Option(help: "Address to listen on (default 127.0.0.1).") var host: String?
    @Option(help: "Port to listen on; 0 picks a free one (default 7878).") var port: Int?
    @Option(name: .customLong("data-dir"), help: "Data directory (default ./ragd-data).") var dataDir: String?
    @Option(help: "Partitions per new collection (default 4).") var partitions: Int?
    @Option(name: .customLong("max-frame-size"), help: "Largest accepted frame in bytes (default 16 MiB).") var maxFrameSize: Int?
    @Option(help: "SQLite synchronous mode: full (default, survives power loss) or normal.") var synchronous: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info (default), notice, warning, error.") var logLevel: String?

    func setting(_ flag: String?, env: String, file: [String: Any], key: String) -> String? {
        if let flag { return flag }
        if let v = ProcessInfo.processInfo.environment[env], !v.isEmpty { return v }
        if let v = file[key] { return "\(v)" }
        return nil
    }

    func integer(_ flag: Int?, env: String, file: [String: Any], key: String) throws -> Int? {
        guard let s = setting(flag.map(String.init), env: env, file: file, key: key) else { return nil }
        guard let n = Int(s) else { throw ValidationError("\(key) must be an integer, got \(s)") }
        return n
    }

    func run() async throws {
        var file: [String: Any] = [:]
        if let path = config {
            guard let data = FileManager.default.contents(atPath: path),
                  let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ValidationError("cannot read JSON object from \(path)")
            }
            file = object
        }
        var c = RagServerConfiguration()
        if let v = setting(host, env: "RAGD_HOST", file: file, key: "host") { c.host = v }
        if let v = try integer(port, env: "RAGD_PORT", file: file, key: "port") { c.port = v }
        if let v = setting(dataDir, env: "RAGD_DATA_DIR", file: file, key: "data-dir") { c.dataDirectory = v }
        if let v = try integer(partitions, env: "RAGD_PARTITIONS", file: file, key: "partitions") {
            guard (1...256).contains(v) else { throw ValidationError("partitions must be 1...256") }
            c.partitions = v
        }
        if let v = try integer(maxFrameSize, env: "RAGD_MAX_FRAME_SIZE", file: file, key: "max-frame-size") {
            guard v >= 1024 else { throw ValidationError("max-frame-size must be at least 1024") }
            c.maxFrameSize = v
        }
        if let v = setting(synchronous, env: "RAGD_SYNCHRONOUS", file: file, key: "synchronous") {
            guard let s = ["full": RagServerConfigurationSync.full, "normal": .normal][v.lowercased()] else {
                throw ValidationError("synchronous must be full or normal")
            }
            c.synchronous = s
        }
        let levelName = setting(logLevel, env: "RAGD_LOG_LEVEL", file: file, key: "log-level") ?? "info"
        guard let level = Logger.Level(rawValue: levelName.lowercased()) else { throw ValidationError("unknown log level \(levelName)") }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "ragd")
        let configured = c
        let server = try await RagServer(configuration: configured, logger: logger) { address in
            // One line on stdout that scripts and tests read to learn the port.
            let line = "ragd listening on \(address.ipAddress ?? configured.host):\(address.port ?? configured.port)\n"
            FileHandle.standardOutput.write(Data(line.utf8))
        }
        let group = ServiceGroup(configuration: .init(
            services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
