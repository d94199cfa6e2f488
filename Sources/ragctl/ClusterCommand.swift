import ArgumentParser
import Foundation
import RagClient
import RagWire

extension Ragd_V1_ClusterStatusResponse: SwiftProtobufMessageJSON {}
extension Ragd_V1_ClusterChangeResponse: SwiftProtobufMessageJSON {}
extension Ragd_V1_ClusterVerifyResponse: SwiftProtobufMessageJSON {}

/// `ragctl cluster …`: the control plane as a coordinator sees it, and the
/// membership changes that move partitions.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster", abstract: "Nodes, placement and partition moves of an etcd cluster (needs an admin key).",
        subcommands: [Nodes.self, Status.self, AddNode.self, DrainNode.self, RemoveNode.self, Rebalance.self, Verify.self])

    struct Nodes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List live nodes (etcd leases) with their addresses and capacity.")
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await ClusterCommand.status(connection) { s in
                print("placement: \(s.shards) logical partitions × \(s.replicationFactor) replicas (version \(s.placementVersion)); \(s.nodes.count) nodes registered")
                for n in s.nodes {
                    let free = String(format: "%.1f GiB free", Double(n.freeBytes) / 1_073_741_824)
                    print([n.id, n.role, n.publicAddress, n.internalAddress.isEmpty ? "-" : n.internalAddress,
                           "\(n.chunks) chunks", free, n.inLayout ? "member" : (n.role == "shard" ? "not a member (ragctl cluster add-node \(n.id))" : "")].joined(separator: "\t"))
                }
                for r in s.unregistered { print("\(r)\tmember, not registered (down, or started without --etcd)") }
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Placement version, partitions per node, moves in progress with progress and rate.")
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await ClusterCommand.status(connection) { s in
                print("placement version \(s.placementVersion): \(s.shards) logical partitions × \(s.replicationFactor) replicas"
                      + (s.unassigned > 0 ? ", \(s.unassigned) replicas unassigned" : "")
                      + (s.outOfSync > 0 ? ", \(s.outOfSync) replicas out of sync (catching up)" : ""))
                print("mover: \(s.mover.isEmpty ? "(none)" : s.mover)")
                print("node\taddress\tstate\tlease\tpartitions\tprimary\tout-of-sync\tchunks")
                for m in s.members {
                    print([m.id, m.address, m.state, m.live ? "live" : "EXPIRED", "\(m.partitions)", "\(m.primaryOf)", "\(m.outOfSync)", "\(m.chunks)"]
                        .joined(separator: "\t"))
                }
                if s.moves.isEmpty { print("no moves in progress") }
                for m in s.moves {
                    let pct = m.totalDocuments > 0 ? 100 * Double(m.copiedDocuments) / Double(m.totalDocuments) : 0
                    print(String(format: "move partition %d: %@ → %@ %@ %d/%d documents (%.0f%%), %.1f MB at %.1f MB/s%@",
                                 m.partition, m.from.isEmpty ? "(new replica)" : m.from, m.to, m.phase, m.copiedDocuments, m.totalDocuments, pct,
                                 Double(m.copiedBytes) / 1e6, m.bytesPerSecond / 1e6, m.error.isEmpty ? "" : " — \(m.error)"))
                }
            }
        }
    }

    /// ClusterStatus, as JSON with --json, else handed to `show` after any degraded line.
    static func status(_ connection: ConnectionOptions, _ show: @escaping (ClusterStatus) -> Void) async throws {
        let client = try connection.client()
        try await runReporting {
            let s = try await client.clusterStatus(timeout: connection.deadline)
            if connection.json { printJSON(s); return }
            if !s.degraded.isEmpty { print("degraded: \(s.degraded)") }
            show(s)
        }
    }

    static func change(_ connection: ConnectionOptions, _ action: String, node: String = "", rate: Double = 0) async throws {
        let client = try connection.client()
        try await runReporting {
            let r = try await client.clusterChange(action, node: node, maxBytesPerSecond: rate, timeout: connection.deadline)
            if connection.json { printJSON(r); return }
            print("\(r.message) (placement version \(r.placementVersion))")
            if r.planned.isEmpty { print("balanced: nothing to move") }
            for m in r.planned.prefix(20) { print("planned: partition \(m.partition) \(m.from.isEmpty ? "(new replica)" : m.from) → \(m.to)") }
            if r.planned.count > 20 { print("… \(r.planned.count - 20) more") }
        }
    }

    struct AddNode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-node", abstract: "Make a registered shard node a member; the rebalancer moves its share to it.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Node id (as `ragctl cluster nodes` lists it) or internal address.") var node: String
        func run() async throws { try await ClusterCommand.change(connection, "add-node", node: node) }
    }

    struct DrainNode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "drain-node", abstract: "Move every partition off a node (before removing it).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Node id or internal address.") var node: String
        func run() async throws { try await ClusterCommand.change(connection, "drain-node", node: node) }
    }

    struct RemoveNode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove-node", abstract: "Remove a drained node from the placement.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Node id or internal address.") var node: String
        func run() async throws { try await ClusterCommand.change(connection, "remove-node", node: node) }
    }

    struct Rebalance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Plan and start moves now; optionally set the move throttle.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("max-rate"), help: "Move throttle in MB/s (default: keep the current one; 32 MB/s initially).") var rate: Double?
        func run() async throws {
            if let rate, !(rate > 0) { throw ValidationError("--max-rate must be more than 0") }
            try await ClusterCommand.change(connection, "rebalance", rate: (rate ?? 0) * 1e6)
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare every replica of every partition, document by document; exit status 1 when any differ.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: [.customShort("c"), .long], help: "Only this collection.") var collection: String?

        func run() async throws {
            let client = try connection.client()
            var differ = false
            try await runReporting {
                let r = try await client.clusterVerify(collection: collection ?? "", timeout: connection.deadline)
                differ = r.mismatchCount > 0
                if connection.json { printJSON(r); return }
                print("compared \(r.documents) documents in \(r.partitions) partitions (\(r.replicas) replica copies): "
                      + (r.mismatchCount == 0 ? "all replicas agree" : "\(r.mismatchCount) documents differ"))
                for m in r.mismatches {
                    let copies = m.hashes.keys.sorted().map { "\($0)=\(String(m.hashes[$0]!, radix: 16))" }.joined(separator: " ")
                    print("differs: \(m.collection)/\(m.partition) \(m.documentID): \(copies.isEmpty ? "(missing)" : copies)")
                }
                for s in r.skipped { print("skipped: \(s)") }
            }
            if differ { throw ExitCode(1) }
        }
    }
}
