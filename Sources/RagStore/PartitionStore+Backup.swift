import Foundation
import GRDB
import RagCore

/// What a partition copy holds, read in the same transaction as the copy.
public struct PartitionCopy: Sendable, Codable, Hashable {
    public var documents: Int
    public var chunks: Int
    /// The last replication log entry applied (0 on a single server).
    public var seq: UInt64

    public init(documents: Int, chunks: Int, seq: UInt64) {
        self.documents = documents
        self.chunks = chunks
        self.seq = seq
    }
}

extension PartitionStore {
    /// Copies the partition into a new self-contained file at `path` (SQLite's
    /// online backup, from one read transaction). `pinned` is called once the
    /// transaction has its snapshot: writes committed after that are not in the
    /// copy, so a caller holding writes off until every partition is pinned gets
    /// one consistent point across partitions, and writes go on during the copy.
    /// `pinned` is called exactly once, also when the copy fails before pinning.
    public func backup(to path: String, pinned: () -> Void) throws(RagError) -> PartitionCopy {
        var signalled = false
        defer { if !signalled { pinned() } }
        do {
            try? FileManager.default.removeItem(atPath: path)
            let destination = try DatabaseQueue(path: path)
            let copy = try pool.read { db -> PartitionCopy in
                // The first read fixes the snapshot every later read of this transaction sees.
                let documents = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM document") ?? 0
                signalled = true
                pinned()
                let chunks = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM chunk") ?? 0
                let seq = try Int64.fetchOne(db, sql: "SELECT seq FROM applied WHERE id = 0") ?? 0
                try destination.writeWithoutTransaction { try db.backup(to: $0) }
                return PartitionCopy(documents: documents, chunks: chunks, seq: UInt64(seq))
            }
            // One file, no -wal beside it: what goes into an archive.
            try destination.writeWithoutTransaction { try $0.execute(sql: "PRAGMA journal_mode = DELETE") }
            try destination.close()
            return copy
        } catch {
            throw RagError(.internal, "cannot copy partition \((path as NSString).lastPathComponent): \(error)")
        }
    }
}
