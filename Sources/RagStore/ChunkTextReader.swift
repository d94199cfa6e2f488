import GRDBSQLite
import RagCore
import RagEngine
import Synchronization

/// Reads chunk texts for the final hits of a query: one read-only SQLite
/// connection of its own with one prepared statement, used under a lock on
/// the calling thread. (A GRDB pool read costs about 40 µs in queue hops and
/// bookkeeping; this costs a few µs per chunk, and it runs on every query.)
/// In WAL mode it reads the last commit without blocking writers. The
/// search that chose the chunks saw an earlier state, so each text is
/// checked against the content hash that was scored.
final class ChunkTextReader: Sendable {
    private struct Connection: @unchecked Sendable {  // used only under `state`'s lock
        var db: OpaquePointer
        var select: OpaquePointer
    }

    private let path: String
    private let state = Mutex<(connection: Connection?, closed: Bool)>((nil, false))

    init(path: String) { self.path = path }

    private static let sql = """
        SELECT c.text FROM chunk c JOIN document d ON d.id = c.documentId
        WHERE c.documentId = ?1 AND c.ordinal = ?2 AND d.contentHash = ?3
        """

    /// The texts of these chunks whose document still has the given content hash.
    func texts(_ chunks: [ChunkKey: UInt64]) throws(RagError) -> [ChunkKey: String] {
        try state.withLock { read(chunks, &$0) }.get()
    }

    /// As `texts`, or nil at once while another caller reads: the caller may
    /// then wait somewhere waiting costs less (not on the cooperative pool).
    func textsIfFree(_ chunks: [ChunkKey: UInt64]) throws(RagError) -> [ChunkKey: String]? {
        try state.withLockIfAvailable { read(chunks, &$0) }?.get()
    }

    private func read(_ chunks: [ChunkKey: UInt64], _ state: inout (connection: Connection?, closed: Bool)) -> Result<[ChunkKey: String], RagError> {
        guard !state.closed else { return .failure(RagError(.unavailable, "the partition is closed")) }
        do throws(RagError) {
            if state.connection == nil { state.connection = try open() }
            let c = state.connection!
            // One read transaction for the batch: one WAL snapshot taken, not one per chunk.
            try exec(c.db, "BEGIN")
            defer { _ = sqlite3_exec(c.db, "COMMIT", nil, nil, nil) }
            var out: [ChunkKey: String] = [:]
            for (key, hash) in chunks {
                if let t = try read(c, key, hash) { out[key] = t }
            }
            return .success(out)
        } catch {
            // A connection that failed once is opened again on the next call.
            if let c = state.connection { Self.close(c) }
            state.connection = nil
            return .failure(error)
        }
    }

    func close() {
        state.withLock { state in
            if let c = state.connection { Self.close(c) }
            state = (nil, true)
        }
    }

    private func open() throws(RagError) -> Connection {
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let db else {
            if let db { sqlite3_close_v2(db) }
            throw RagError(.internal, "cannot open a text reader on a partition (SQLite code \(rc))")
        }
        sqlite3_busy_timeout(db, 5_000)
        // No memory mapping (`mmap_size`): it read texts ~25% faster, but the
        // kernel maps neighbouring pages on every fault (fault-around), and
        // after a few hundred queries the whole file counted in the server's
        // RSS (+237 MB at 100k chunks).
        var select: OpaquePointer?
        guard sqlite3_prepare_v3(db, Self.sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &select, nil) == SQLITE_OK, let select else {
            let message = String(cString: sqlite3_errmsg(db))
            sqlite3_close_v2(db)
            throw RagError(.internal, "cannot prepare the text read: \(message)")
        }
        return Connection(db: db, select: select)
    }

    private func read(_ c: Connection, _ key: ChunkKey, _ hash: UInt64) throws(RagError) -> String? {
        defer {
            sqlite3_reset(c.select)
            sqlite3_clear_bindings(c.select)
        }
        let rc: Int32 = key.documentID.withCString { id in
            // SQLITE_STATIC (nil): the id's buffer outlives the step that reads it.
            sqlite3_bind_text(c.select, 1, id, -1, nil)
            sqlite3_bind_int64(c.select, 2, Int64(key.ordinal))
            sqlite3_bind_int64(c.select, 3, Int64(bitPattern: hash))
            return sqlite3_step(c.select)
        }
        switch rc {
        case SQLITE_ROW:
            guard let p = sqlite3_column_text(c.select, 0) else { return "" }
            let n = Int(sqlite3_column_bytes(c.select, 0))
            return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
        case SQLITE_DONE: return nil
        default: throw RagError(.internal, "reading chunk texts failed: \(String(cString: sqlite3_errmsg(c.db)))")
        }
    }

    private func exec(_ db: OpaquePointer, _ sql: String) throws(RagError) {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
            throw RagError(.internal, "reading chunk texts failed: \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    private static func close(_ c: Connection) {
        sqlite3_finalize(c.select)
        sqlite3_close_v2(c.db)
    }
}
