import ArgumentParser
import Foundation
import RagServer

/// `ragd keys …`: API keys in a data directory, without a running server (to
/// create the first admin key; a running server does not see changes made here
/// until it restarts — use `ragctl keys` against it instead), or in etcd
/// (`--etcd`), where coordinators see changes within a second.
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage API keys in a data directory (bootstrap; the server must be stopped).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Location: ParsableArguments {
        @Option(name: .customLong("data-dir"), help: "Data directory (default $RAGD_DATA_DIR or ./ragd-data).") var dataDir: String?
        @Option(help: "etcd endpoints host:port[,…]: the keys of coordinators that share etcd (default $RAGD_ETCD).") var etcd: String?
        var store: any APIKeyStore {
            get throws {
                if let e = etcd ?? ProcessInfo.processInfo.environment["RAGD_ETCD"], !e.isEmpty {
                    return EtcdKeyStore(etcd: EtcdClient(endpoints: e.split(separator: ",").map(String.init)))
                }
                let dir = dataDir ?? ProcessInfo.processInfo.environment["RAGD_DATA_DIR"] ?? "./ragd-data"
                return try KeyStore(path: dir + "/keys.sqlite")
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key and print its token (shown only this once).")
        @OptionGroup var location: Location
        @Option(help: "What the key is for.") var name: String = ""
        @Option(help: "read, write or admin.") var role: String
        @Option(name: .customLong("collection"), help: "A collection the key may use (repeat; default: all).") var collections: [String] = []
        @Option(help: "Queries per second (token bucket; default unlimited).") var qps: Double = 0
        @Option(help: "Documents per second (token bucket; default unlimited).") var dps: Double = 0

        func run() async throws {
            let (record, token) = try await location.store.create(name: name, role: try KeyRole(parsing: role), collections: collections,
                                                            queriesPerSecond: qps, documentsPerSecond: dps)
            FileHandle.standardError.write(Data("created key \(record.id) (\(record.role.rawValue)); the token below is not stored anywhere\n".utf8))
            print(token.text)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never their secrets).")
        @OptionGroup var location: Location

        func run() async throws {
            for k in try await location.store.all() {
                let scope = k.collections.isEmpty ? "all collections" : k.collections.joined(separator: ",")
                let limits = [k.queriesPerSecond > 0 ? "\(k.queriesPerSecond) q/s" : nil, k.documentsPerSecond > 0 ? "\(k.documentsPerSecond) docs/s" : nil]
                    .compactMap { $0 }.joined(separator: " ")
                print([k.id, k.role.rawValue, k.revoked ? "revoked" : "active", scope, limits, k.name.debugDescription].joined(separator: "\t"))
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key for good.")
        @OptionGroup var location: Location
        @Argument(help: "The key's id (the part after ragd_).") var id: String

        func run() async throws {
            let k = try await location.store.revoke(id: id)
            print("revoked \(k.id)")
        }
    }
}
