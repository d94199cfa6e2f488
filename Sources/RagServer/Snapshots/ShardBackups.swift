import Foundation
import RagCore
import RagStore
import Synchronization

/// A shard node's side of a coordinator's snapshot: copies of its partitions,
/// each made from one read transaction into a file of its own, kept until the
/// coordinator has read and released it.
///
/// `start` answers once the copy's transaction is open, so a coordinator that
/// holds writes off until every partition has answered gets one point across
/// all of them; the copy itself runs after, on a thread of its own.
public final class ShardBackups: Sendable {
    struct Backup: Sendable {
        let path: String
        let copy: Task<PartitionCopy, any Error>
        var lastUse: ContinuousClock.Instant
    }

    let directory: String
    private let backups = Mutex<[String: Backup]>([:])
    /// A copy nobody read for this long is deleted (its coordinator died).
    static let idleLimit: Duration = .seconds(600)
    /// Copies at once: each holds a thread and a file.
    static let maxBackups = 64

    public init(dataDirectory: String) {
        directory = dataDirectory + "/snapshots/.shard-backups"
        // Copies from before a restart have no reader any more.
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Starts a copy of `store` (nil: the node holds nothing of the partition;
    /// the copy is an empty partition). Returns its token once pinned.
    public func start(_ store: PartitionStore?) async throws(RagError) -> String {
        sweep()
        let token = UUID().uuidString
        let path = "\(directory)/\(token).sqlite"
        guard backups.withLock({ $0.count }) < Self.maxBackups else {
            throw RagError(.resourceExhausted, "this node already holds \(Self.maxBackups) partition copies for snapshots; try again later")
        }
        let pinned = Latch(1)
        let executor = ThreadPoolExecutor(name: "shard-backup", threads: 1)
        let copy = Task(executorPreference: executor) { () throws -> PartitionCopy in
            defer { executor.shutdown() }
            guard let store else {
                let empty = try PartitionStore(path: "\(path).empty", synchronous: .normal)
                defer {
                    try? empty.close()
                    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: "\(path).empty\(suffix)") }
                }
                return try empty.backup(to: path) { pinned.arrive() }
            }
            return try store.backup(to: path) { pinned.arrive() }
        }
        await pinned.wait()
        backups.withLock { $0[token] = Backup(path: path, copy: copy, lastUse: .now) }
        return token
    }

    /// Up to `length` bytes of copy `token` from `offset` (waiting for the copy
    /// to finish), its size and what it holds.
    public func read(_ token: String, offset: UInt64, length: Int) async throws(RagError) -> (Data, UInt64, PartitionCopy) {
        guard let backup = touch(token) else { throw .notFound("no partition copy \(token.truncatedUTF8(maxBytes: 40).debugDescription) on this node (released, expired or made before a restart)") }
        let copy: PartitionCopy
        do { copy = try await backup.copy.value } catch {
            release(token)
            throw RagError(from: error)
        }
        let (data, total) = try SnapshotManager.readPart(of: backup.path, offset: offset, length: length, what: "partition copy \(token)")
        touch(token)
        return (data, total, copy)
    }

    /// Deletes copy `token` (once it is made).
    public func release(_ token: String) {
        guard let backup = backups.withLock({ $0.removeValue(forKey: token) }) else { return }
        Task {
            _ = try? await backup.copy.value
            try? FileManager.default.removeItem(atPath: backup.path)
        }
    }

    @discardableResult
    private func touch(_ token: String) -> Backup? {
        backups.withLock { b in
            b[token]?.lastUse = .now
            return b[token]
        }
    }

    /// Releases copies idle past the limit.
    private func sweep() {
        let idle = backups.withLock { b in b.filter { $0.value.lastUse.duration(to: .now) > Self.idleLimit }.map(\.key) }
        idle.forEach(release)
    }
}
