import Foundation
import GRDB
import RagCore

/// Where a partition's file stands, for a saved index image to be checked
/// against: each write transaction takes the next `number`, and the journal
/// records which documents it touched. An image saved at generation g is
/// brought up to date by reloading the documents journaled after g, which is
/// possible while `floor` ≤ g (the journal is only cut below a saved image).
/// `lineage` is drawn at random when the file is created: an image of another
/// partition file never matches.
public struct Generation: Sendable, Hashable {
    public var lineage: Int64
    public var number: UInt64
    public var floor: UInt64

    public init(lineage: Int64, number: UInt64, floor: UInt64) {
        self.lineage = lineage
        self.number = number
        self.floor = floor
    }
}

extension PartitionStore {
    /// The generation of the last write committed through this store.
    public var generation: Generation { committed.withLock { $0 } }

    static func generation(_ db: Database) throws -> Generation {
        guard let row = try Row.fetchOne(db, sql: "SELECT lineage, n, floor FROM generation WHERE id = 0") else {
            throw RagError(.dataLoss, "the partition file has no generation row")
        }
        return Generation(lineage: row["lineage"], number: UInt64(row["n"] as Int64), floor: UInt64(row["floor"] as Int64))
    }

    /// Inside a write transaction: takes the next generation and journals `ids` under it.
    func journal(_ db: Database, ids: [String]) throws -> UInt64 {
        try db.execute(sql: "UPDATE generation SET n = n + 1 WHERE id = 0")
        let n = try Int64.fetchOne(db, sql: "SELECT n FROM generation WHERE id = 0") ?? 0
        let insert = try db.cachedStatement(sql: "INSERT INTO journal (generation, documentId) VALUES (?, ?)")
        for id in Set(ids) { try insert.execute(arguments: [n, id]) }
        return UInt64(n)
    }

    /// The documents written or deleted after generation `after`, or nil when
    /// the journal no longer reaches back that far (or `after` is ahead of this
    /// file, or of another lineage): then only a full load is right.
    public func changed(since after: UInt64, lineage: Int64) throws(RagError) -> Set<String>? {
        do {
            return try pool.read { db -> Set<String>? in
                let g = try Self.generation(db)
                guard g.lineage == lineage, g.floor <= after, after <= g.number else { return nil }
                return Set(try String.fetchAll(db, sql: "SELECT DISTINCT documentId FROM journal WHERE generation > ?", arguments: [Int64(after)]))
            }
        } catch { throw RagError(.internal, "cannot read the journal of \(path): \(error)") }
    }

    /// Forgets the journal up to `through` (an image of that generation is saved).
    public func trimJournal(through: UInt64) throws(RagError) {
        do {
            try pool.write { db in
                let g = try Self.generation(db)
                guard through > g.floor, through <= g.number else { return }
                try db.execute(sql: "DELETE FROM journal WHERE generation <= ?", arguments: [Int64(through)])
                try db.execute(sql: "UPDATE generation SET floor = ? WHERE id = 0", arguments: [Int64(through)])
            }
            committed.withLock { $0.floor = max($0.floor, through) }
        } catch { throw RagError(.internal, "cannot trim the journal of \(path): \(error)") }
    }
}
