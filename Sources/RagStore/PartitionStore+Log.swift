import Foundation
import GRDB
import RagCore

/// One entry of a partition's replication log: a write, its place in the
/// partition's order and the placement version of the primary that ordered it.
public struct LogEntry: Sendable, Hashable {
    public var seq: UInt64
    public var version: UInt64
    /// The write itself, encoded by the server (opaque here).
    public var payload: Data

    public init(seq: UInt64, version: UInt64, payload: Data) {
        self.seq = seq
        self.version = version
        self.payload = payload
    }
}

/// How much of a partition's replication log is kept behind its newest entry:
/// at most `entries` entries and about `bytes` bytes (the older end goes first).
public struct LogRetention: Sendable, Hashable {
    public var entries: Int
    public var bytes: Int

    public init(entries: Int = 10_000, bytes: Int = 64 << 20) {
        self.entries = entries
        self.bytes = bytes
    }

    /// No log (a single node's partitions).
    public static let none = LogRetention(entries: 0, bytes: 0)
}

extension PartitionStore {
    /// The last entry applied: its sequence number and version.
    public func applied() throws(RagError) -> (seq: UInt64, version: UInt64) {
        do {
            return try pool.read { db in
                guard let row = try Row.fetchOne(db, sql: "SELECT seq, version FROM applied WHERE id = 0") else { return (0, 0) }
                return (UInt64(row["seq"] as Int64), UInt64(row["version"] as Int64))
            }
        } catch { throw RagError(.internal, "cannot read the applied sequence of \(path): \(error)") }
    }

    /// Log entries after `seq`, in order, up to about `maxBytes` (at least one).
    public func entries(after seq: UInt64, maxBytes: Int) throws(RagError) -> [LogEntry] {
        do {
            return try pool.read { db in
                var out: [LogEntry] = []
                var bytes = 0
                let rows = try Row.fetchCursor(db, sql: "SELECT seq, version, payload FROM oplog WHERE seq > ? ORDER BY seq", arguments: [Int64(seq)])
                while let row = try rows.next() {
                    let payload: Data = row["payload"]
                    if !out.isEmpty, bytes + payload.count > maxBytes { break }
                    out.append(LogEntry(seq: UInt64(row["seq"] as Int64), version: UInt64(row["version"] as Int64), payload: payload))
                    bytes += payload.count
                }
                return out
            }
        } catch { throw RagError(.internal, "cannot read the log of \(path): \(error)") }
    }

    /// The oldest entry still logged (0: the log is empty).
    public func firstLogged() throws(RagError) -> UInt64 {
        do { return try pool.read { UInt64(try Int64.fetchOne($0, sql: "SELECT MIN(seq) FROM oplog") ?? 0) } }
        catch { throw RagError(.internal, "cannot read the log of \(path): \(error)") }
    }

    /// The version of the logged entry `seq` (nil: not in the log).
    public func version(of seq: UInt64) throws(RagError) -> UInt64? {
        do { return try pool.read { try Int64.fetchOne($0, sql: "SELECT version FROM oplog WHERE seq = ?", arguments: [Int64(seq)]).map(UInt64.init) } }
        catch { throw RagError(.internal, "cannot read the log of \(path): \(error)") }
    }

    /// Records `seq` as applied without a log entry: a copy of the source at
    /// that point was (or is being) made, and its log continues from there.
    public func setApplied(seq: UInt64, version: UInt64) throws(RagError) {
        do {
            try pool.write { db in
                try db.execute(sql: "DELETE FROM oplog")
                try db.execute(sql: "UPDATE applied SET seq = ?, version = ? WHERE id = 0", arguments: [Int64(seq), Int64(version)])
            }
        } catch { throw RagError(.internal, "cannot record the applied sequence of \(path): \(error)") }
    }
}
