import ArgumentParser
import Foundation
import RagClient
import RagCore
import RagWire

struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot", abstract: "Consistent snapshots of collections: create, list, download, restore, delete (admin).",
        subcommands: [Create.self, List.self, Download.self, Restore.self, Delete.self])

    static func describe(_ s: Ragd_V1_SnapshotInfo) -> String {
        let when = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: s.createdAt))
        return "\(s.name)  \(s.collection)  \(s.documents) documents  \(s.chunks) chunks  \(s.bytes) bytes  \(s.embedder)  \(when)"
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Snapshot a collection on the server (online); --out also downloads it.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .shortAndLong) var collection = "default"
        @Option(help: "Also copy the archive to this local file.") var out: String?
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let r = try await client.createSnapshot(collection: collection, timeout: connection.deadline)
                if let out { _ = try await client.downloadSnapshot(r.snapshot.name, to: out, timeout: connection.deadline) }
                if connection.json { print(r.jsonText); return }
                print(SnapshotCommand.describe(r.snapshot) + String(format: "  (%.2f s)", r.seconds) + (out.map { "\nsaved to \($0)" } ?? ""))
            }
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let all = try await client.listSnapshots(timeout: connection.deadline)
                if connection.json { print(Ragd_V1_ListSnapshotsResponse.with { $0.snapshots = all }.jsonText); return }
                if all.isEmpty { print("no snapshots") }
                for s in all { print(SnapshotCommand.describe(s)) }
            }
        }
    }

    struct Download: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        @Option(help: "Local file (default NAME.ragsnap).") var out: String?
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let path = out ?? "\(name).ragsnap"
                let n = try await client.downloadSnapshot(name, to: path, timeout: connection.deadline)
                print("saved \(n) bytes to \(path)")
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a snapshot (a name the server keeps, or a local archive file, uploaded first) into a collection.",
            discussion: "Over an existing collection the switch is atomic: queries see the old documents or the restored ones, never a mix.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Snapshot name on the server, or a local .ragsnap file.") var snapshot: String
        @Option(name: .shortAndLong, help: "Collection to restore into (default: the one the snapshot was taken of).") var collection = ""
        @Option(help: "Name to upload a local file under (default: its file name without .ragsnap).") var name: String?
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                var snapshotName = snapshot
                if FileManager.default.fileExists(atPath: snapshot) {
                    snapshotName = name ?? URL(fileURLWithPath: snapshot).deletingPathExtension().lastPathComponent
                    _ = try await client.uploadSnapshot(snapshot, as: snapshotName, timeout: connection.deadline)
                }
                let r = try await client.restoreSnapshot(snapshotName, into: collection, timeout: connection.deadline)
                if connection.json { print(r.jsonText); return }
                print(String(format: "restored %@ into %@: %llu documents, %llu chunks (%.2f s)", snapshotName, r.collection, r.documents, r.chunks, r.seconds))
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                try await client.deleteSnapshot(name, timeout: connection.deadline)
                print("deleted \(name)")
            }
        }
    }
}
