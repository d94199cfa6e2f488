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
                      HealthCommand.self, DeleteCommand.self, CollectionsCommand.self, CacheCommand.self, ExperimentsCommand.self, JobsCommand.self, EvalCommand.self, BenchCommand.self])
}

/// Where the server is and how long to wait: shared by every subcommand.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Server address as host:port (env RAGD_ADDRESS; default 127.0.0.1:7878).")
    var server: String?

    @Option(help: "Deadline for each call, in seconds (default 60; 600 for each batch of `index`, which may embed for minutes).")
    var timeout: Double?

    @Flag(help: "Print machine-readable JSON.")
    var json = false

    func client() throws -> RagClient {
        let address = server ?? ProcessInfo.processInfo.environment["RAGD_ADDRESS"] ?? "127.0.0.1:7878"
        guard let (host, port) = splitHostPort(address) else { throw ValidationError("--server must look like host:port, got \(address)") }
        return RagClient(host: host, port: port)
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
