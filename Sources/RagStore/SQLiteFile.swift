import Foundation
import GRDB

/// Opens the small single-writer SQLite files beside the data (catalog,
/// jobs, experiments): parent directory created, WAL journal, chosen
/// `synchronous` level, migrations applied.
public enum SQLiteFile {
    public static func openQueue(path: String, synchronous: PartitionStore.Synchronous,
                                 migrate: (inout DatabaseMigrator) -> Void) throws -> DatabaseQueue {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var config = Configuration()
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous.rawValue)") }
        let queue = try DatabaseQueue(path: path, configuration: config)
        try queue.writeWithoutTransaction { try $0.execute(sql: "PRAGMA journal_mode = WAL") }
        var migrator = DatabaseMigrator()
        migrate(&migrator)
        try migrator.migrate(queue)
        return queue
    }
}
