import ArgumentParser
import Foundation
import RagClient
import RagCore

@main
struct Ragctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ragctl",
        abstract: "Command-line client for a Ragd server.",
        subcommands: [IndexCommand.self, QueryCommand.self, StreamCommand.self, StatsCommand.self,
                      HealthCommand.self, DeleteCommand.self, CollectionsCommand.self, CacheCommand.self, ExperimentsCommand.self, JobsCommand.self, EvalCommand.self, BenchCommand.self, KeysCommand.self, ClusterCommand.self, ReindexCommand.self, SnapshotCommand.self])
}

/// Where the server is and how long to wait: shared by every subcommand.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Server address as host:port (env RAGD_ADDRESS; default 127.0.0.1:7878).")
    var server: String?

    @Option(help: "Deadline for each call, in seconds (default 60; 600 for each batch of `index`, which may embed for minutes).")
    var timeout: Double?

    @Flag(help: "Print machine-readable JSON.")
    var json = false

    @Option(name: .customLong("api-key"), help: "API key (env RAGD_API_KEY; prefer the variable: flags show up in `ps`).")
    var apiKey: String?

    @Flag(help: "Connect with TLS, trusting the system's CAs (implied by --tls-ca; env RAGD_TLS=1).")
    var tls = false

    @Option(name: .customLong("tls-ca"), help: "PEM CA that signed the server's certificate (env RAGD_TLS_CA); turns TLS on.")
    var tlsCA: String?

    @Option(name: .customLong("tls-cert"), help: "PEM client certificate, for servers that require one (env RAGD_TLS_CERT).")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "PEM key of --tls-cert (env RAGD_TLS_KEY).")
    var tlsKey: String?

    @Option(name: .customLong("tls-server-name"), help: "Name to verify in the server's certificate (default: the host of --server).")
    var tlsServerName: String?

    func client() throws -> RagClient {
        let env = ProcessInfo.processInfo.environment
        let address = server ?? env["RAGD_ADDRESS"] ?? "127.0.0.1:7878"
        guard let (host, port) = splitHostPort(address) else { throw ValidationError("--server must look like host:port, got \(address)") }
        let ca = tlsCA ?? env["RAGD_TLS_CA"], cert = tlsCert ?? env["RAGD_TLS_CERT"], key = tlsKey ?? env["RAGD_TLS_KEY"]
        let useTLS = tls || env["RAGD_TLS"] == "1" || ca != nil || cert != nil
        let options = useTLS ? ClientTLS(caFile: ca, certificateFile: cert, keyFile: key, serverName: tlsServerName) : nil
        let token = apiKey ?? env["RAGD_API_KEY"]
        return RagClient(host: host, port: port, apiKey: token?.isEmpty == false ? token : nil, tls: options)
    }

    var deadline: Duration { .milliseconds(Int64((timeout ?? 60) * 1000)) }
    /// Index batches embed before they commit: with a local model on a loaded
    /// machine one batch can take minutes, so they get a longer default.
    var indexDeadline: Duration { .milliseconds(Int64((timeout ?? 600) * 1000)) }
}

/// A problem with what the user gave (a file, its contents): one line on stderr
/// and exit 1, as for a server error (ArgumentParser's ValidationError would
/// print the usage text and exit 64, which is for wrong flags only).
func failure(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("ragctl: \(message)\n".utf8))
    return ExitCode(1)
}

/// Runs a command body, turning a RagError into one line on stderr and exit 1.
func runReporting(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let e as RagError {
        FileHandle.standardError.write(Data("ragctl: \(e.code): \(e.message)\n".utf8))
        throw ExitCode(1)
    }
}

func printJSON(_ message: some SwiftProtobufMessageJSON) {
    print(message.jsonText)
}

protocol SwiftProtobufMessageJSON { var jsonText: String { get } }
