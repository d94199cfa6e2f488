import ArgumentParser
import Foundation
import RagClient
import RagWire

extension Ragd_V1_ClusterStatusResponse: SwiftProtobufMessageJSON {}

/// `ragctl cluster …`: the control plane as a coordinator sees it.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster", abstract: "Nodes registered in etcd and the layout in use (needs an admin key).",
        subcommands: [Nodes.self])

    struct Nodes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List live nodes (etcd leases) with their addresses and capacity.")
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let s = try await client.clusterStatus(timeout: connection.deadline)
                if connection.json { printJSON(s); return }
                if !s.degraded.isEmpty { print("degraded: \(s.degraded)") }
                print("layout: \(s.shards) shards × \(s.replicationFactor) replicas; \(s.nodes.count) nodes registered")
                for n in s.nodes {
                    let free = String(format: "%.1f GiB free", Double(n.freeBytes) / 1_073_741_824)
                    print([n.id, n.role, n.publicAddress, n.internalAddress.isEmpty ? "-" : n.internalAddress,
                           "\(n.chunks) chunks", free, n.inLayout ? "in layout" : (n.role == "shard" ? "not in layout" : "")].joined(separator: "\t"))
                }
                for r in s.unregistered { print("\(r)\tnot registered (down, or started without --etcd)") }
            }
        }
    }
}
