import Foundation
import RagClient
import RagCore
import RagStore
import RagWire

/// A partition copy being made on one shard node for a snapshot.
struct RemoteBackup: Sendable {
    let replica: Replica
    let token: String

    /// Reads the copy into `path` (a new file) and deletes it on the node.
    /// Blocking file writes: run it on a thread of its own.
    func download(to path: String) async throws -> PartitionCopy {
        defer { release() }
        guard FileManager.default.createFile(atPath: path, contents: nil), let out = FileHandle(forWritingAtPath: path) else { throw RagError(.internal, "cannot write a partition copy") }
        defer { try? out.close() }
        var offset: UInt64 = 0
        while true {
            // The first part waits for the copy to be made; later ones only read.
            let part = try await replica.client.call(
                .shardBackupRead, Ragd_V1_ShardBackupReadRequest.with { $0.token = token; $0.offset = offset; $0.length = UInt32(SnapshotManager.maxPart) },
                as: Ragd_V1_ShardBackupReadResponse.self, timeout: offset == 0 ? .seconds(3600) : .seconds(120))
            try out.write(contentsOf: part.data)
            offset += UInt64(part.data.count)
            guard offset < part.total else {
                try out.synchronize()
                return PartitionCopy(documents: Int(part.documents), chunks: Int(part.chunks), seq: part.seq)
            }
            guard !part.data.isEmpty else { throw RagError(.unavailable, "shard node \(replica.address) stopped sending a partition copy at byte \(offset)") }
        }
    }
}

extension RemoteBackup {
    /// Deletes the copy on the node (in the background: nothing waits on it).
    func release() {
        let (client, token) = (replica.client, token)
        Task { _ = try? await client.call(.shardBackupRead, Ragd_V1_ShardBackupReadRequest.with { $0.token = token; $0.release = true },
                                          as: Ragd_V1_ShardBackupReadResponse.self, timeout: .seconds(10)) }
    }
}

extension RemoteShard {
    /// Begins a copy of this partition on one in-sync replica; returns once the
    /// copy's read transaction is open there, so every write acknowledged
    /// before this call is in it and none that begins after.
    func startBackup() async throws -> RemoteBackup {
        try await routed { route in
            var failures: [String] = []
            for r in readOrder(route.replicas) {
                try Task.checkCancellation()
                do {
                    let resp = try await r.client.call(.shardBackup, Ragd_V1_ShardBackupRequest.with { $0.shard = key(route.version) },
                                                       as: Ragd_V1_ShardBackupResponse.self, timeout: .seconds(60))
                    return RemoteBackup(replica: r, token: resp.token)
                } catch {
                    let e = RagError(from: error)
                    guard Self.retryable(e.code), !Placement.isStale(e) else { throw e }
                    r.failed(e)
                    failures.append("\(r.address): \(e)")
                }
            }
            throw RagError(.unavailable, "shard \(partition): no replica could copy it for a snapshot (\(failures.joined(separator: "; ")))")
        }
    }
}
