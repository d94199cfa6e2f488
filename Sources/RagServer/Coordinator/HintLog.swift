import Foundation
import GRDB
import RagCore
import RagStore
import Synchronization

/// Hinted handoff: writes a replica missed (it was down, or behind), kept in
/// order in SQLite on the coordinator and replayed when the replica answers
/// again. While a replica has hints, new writes queue behind them (never
/// applied out of order) and reads avoid it when another replica is current.
public final class HintLog: Sendable {
    let queue: DatabaseQueue

    func close() { try? queue.close() }
    private let pending = Mutex<[String: Int]>([:])

    public init(path: String) throws(RagError) {
        do {
            queue = try SQLiteFile.openQueue(path: path, synchronous: .full) { m in
                m.registerMigration("v1") { db in
                    try db.execute(sql: "CREATE TABLE hint (id INTEGER PRIMARY KEY AUTOINCREMENT, replica TEXT NOT NULL, payload BLOB NOT NULL)")
                    try db.execute(sql: "CREATE INDEX hint_replica ON hint(replica, id)")
                }
            }
            let counts = try queue.read { db in
                try Row.fetchAll(db, sql: "SELECT replica, COUNT(*) AS n FROM hint GROUP BY replica")
                    .reduce(into: [String: Int]()) { $0[$1["replica"]] = $1["n"] }
            }
            pending.withLock { $0 = counts }
        } catch {
            throw RagError(.internal, "cannot open hint log \(path): \(error)")
        }
    }

    public func append(replica: String, payload: Data) throws {
        try queue.write { try $0.execute(sql: "INSERT INTO hint (replica, payload) VALUES (?, ?)", arguments: [replica, payload]) }
        pending.withLock { $0[replica, default: 0] += 1 }
    }

    public func count(_ replica: String) -> Int { pending.withLock { $0[replica] ?? 0 } }

    /// Replicas that have hints waiting, in address order.
    public func replicasWithHints() -> [String] { pending.withLock { $0.filter { $0.value > 0 }.keys.sorted() } }

    public func oldest(_ replica: String) throws -> (id: Int64, payload: Data)? {
        try queue.read { db in
            try Row.fetchOne(db, sql: "SELECT id, payload FROM hint WHERE replica = ? ORDER BY id LIMIT 1", arguments: [replica])
                .map { ($0["id"], $0["payload"]) }
        }
    }

    public func remove(_ id: Int64, replica: String) throws {
        try queue.write { try $0.execute(sql: "DELETE FROM hint WHERE id = ?", arguments: [id]) }
        pending.withLock { $0[replica] = max(0, ($0[replica] ?? 1) - 1) }
    }
}
