import ArgumentParser
import Foundation
import RagClient
import RagWire

extension Ragd_V1_ApiKey: SwiftProtobufMessageJSON {}

/// `ragctl keys …`: API keys of a running server (admin key required).
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Create, list and revoke API keys (needs an admin key).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key; prints its token, shown only this once.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "What the key is for.") var name = ""
        @Option(help: "read, write or admin.") var role: String
        @Option(name: .customLong("collection"), help: "A collection the key may use (repeat; default: all).") var collections: [String] = []
        @Option(help: "Queries per second (default unlimited).") var qps: Double = 0
        @Option(help: "Documents per second (default unlimited).") var dps: Double = 0

        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let (key, token) = try await client.createKey(name: name, role: role, collections: collections, queriesPerSecond: qps,
                                                              documentsPerSecond: dps, timeout: connection.deadline)
                if connection.json {
                    print("{\"key\": \(key.jsonText), \"token\": \"\(token)\"}")
                    return
                }
                FileHandle.standardError.write(Data("created key \(key.id) (\(key.role)); the token below is not stored anywhere\n".utf8))
                print(token)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never their secrets).")
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let keys = try await client.listKeys(timeout: connection.deadline)
                if connection.json { print("[" + keys.map(\.jsonText).joined(separator: ", ") + "]"); return }
                for k in keys {
                    let scope = k.collections.isEmpty ? "all collections" : k.collections.joined(separator: ",")
                    print([k.id, k.role, k.revoked ? "revoked" : "active", scope, k.name.debugDescription].joined(separator: "\t"))
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key for good (calls with it fail at once).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The key's id.") var id: String

        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let k = try await client.revokeKey(id: id, timeout: connection.deadline)
                print("revoked \(k.id)")
            }
        }
    }
}
