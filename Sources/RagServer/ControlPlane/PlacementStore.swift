import Foundation
import Logging
import RagCore

/// A partition move as etcd records it (`/ragd/cluster/moves/<partition>`), so
/// that any coordinator can resume it after the one running it died.
public struct MoveRecord: Codable, Sendable, Hashable {
    public var partition: Int
    /// The member that leaves (nil: a replica is added, none leaves).
    public var from: String?
    public var to: String
    /// "copying" → "switched" → "dropping"; or "failed" (a write to the new
    /// replica failed: the move is undone and tried again later).
    public var phase: String
    /// The target's receive session (it tracks writes made during the copy).
    public var session: String = ""
    /// Copy progress: collections done, and the last document id copied in the current one.
    public var doneCollections: [String] = []
    public var cursor: String = ""
    public var copiedDocuments = 0
    public var totalDocuments = 0
    public var copiedBytes = 0
    public var bytesPerSecond = 0.0
    public var startedAt: Double
    public var error = ""
    /// Per collection, the primary's last entry [seq, version] when the copy
    /// began: the target replays the log from there once the copy is made.
    public var bases: [String: [UInt64]]?

    /// Where it lives in etcd.
    public var key: String { PlacementStore.movesPrefix + String(format: "%05d", partition) }
}

/// Cluster-wide settings an operator changes at run time.
public struct ClusterSettings: Codable, Sendable, Hashable {
    /// Copy throttle of partition moves.
    public var maxBytesPerSecond: Double = 32 * 1024 * 1024
}

/// The placement, the moves and the cluster settings in etcd.
public final class PlacementStore: Sendable {
    public static let key = "/ragd/cluster/placement"
    public static let movesPrefix = "/ragd/cluster/moves/"
    public static let moverKey = "/ragd/cluster/mover"
    public static let settingsKey = "/ragd/cluster/settings"
    public let etcd: EtcdClient

    public init(etcd: EtcdClient) {
        self.etcd = etcd
    }

    /// The placement and its etcd revision, or nil before the cluster has one.
    public func load() async throws(RagError) -> (Placement, revision: Int64)? {
        guard let kv = try await etcd.get(Self.key) else { return nil }
        return (try Placement.decode(kv.value), kv.modRevision)
    }

    /// The placement in etcd, creating it first when there is none: from the
    /// cluster file if given (shard s keeps partition s), else empty.
    public func bootstrap(file: ClusterConfiguration?, partitions: Int, replication: Int, logger: Logger) async throws(RagError) -> Placement {
        // A coordinator that starts while etcd elects a leader or restarts a
        // member waits a little rather than exiting.
        var loaded: (Placement, revision: Int64)?
        var attempt = 0
        while true {
            attempt += 1
            do {
                loaded = try await load()
                break
            } catch {
                guard error.code == .unavailable, attempt < 15 else { throw error }
                logger.warning("etcd: \(error.message); trying again")
                try? await Task.sleep(for: .seconds(1))
            }
        }
        if let (p, _) = loaded {
            if file != nil { logger.info("etcd already holds the placement (version \(p.version)); the cluster file is not used") }
            return p
        }
        let fresh = file.map { Placement(seed: $0, partitions: partitions) } ?? Placement(partitions: partitions, replication: replication)
        let (kv, created) = try await etcd.create(Self.key, try fresh.encoded())
        if created {
            logger.info("created the cluster placement in etcd: \(fresh.partitions) logical partitions, replication \(fresh.replication), \(fresh.members.count) nodes")
        }
        return try Placement.decode(kv.value)
    }

    public func moves() async throws(RagError) -> [(MoveRecord, revision: Int64)] {
        try await etcd.list(prefix: Self.movesPrefix).kvs.compactMap { kv in
            (try? JSONDecoder().decode(MoveRecord.self, from: kv.value)).map { ($0, kv.modRevision) }
        }
    }

    public func settings() async throws(RagError) -> ClusterSettings {
        guard let kv = try await etcd.get(Self.settingsKey) else { return ClusterSettings() }
        return (try? JSONDecoder().decode(ClusterSettings.self, from: kv.value)) ?? ClusterSettings()
    }

    public func save(_ settings: ClusterSettings) async throws(RagError) {
        try await etcd.put(Self.settingsKey, try Self.encode(settings))
    }

    /// Publishes `next` if the placement is still at `revision`, with the move
    /// record changes in the same transaction. `mover`: only while that
    /// coordinator still holds the mover's lease.
    public func publish(_ next: Placement, over revision: Int64, mover: String? = nil,
                        move: (record: MoveRecord, revision: Int64, delete: Bool)? = nil) async throws(RagError) -> Bool {
        try next.validate()
        var conditions: [EtcdClient.Condition] = [.modRevision(Self.key, revision)]
        var operations: [EtcdClient.Operation] = [.put(Self.key, try next.encoded())]
        if let mover { conditions.append(.value(Self.moverKey, Data(mover.utf8))) }
        if let move {
            conditions.append(.modRevision(move.record.key, move.revision))
            operations.append(move.delete ? .delete(move.record.key) : .put(move.record.key, try Self.encode(move.record)))
        }
        return try await etcd.transaction(conditions, operations)
    }

    /// Updates a move record if it is still at `revision`; returns the new revision, nil if it changed meanwhile.
    public func update(_ record: MoveRecord, over revision: Int64, mover: String) async throws(RagError) -> Int64? {
        let ok = try await etcd.transaction([.modRevision(record.key, revision), .value(Self.moverKey, Data(mover.utf8))],
                                            [.put(record.key, try Self.encode(record))])
        guard ok else { return nil }
        return try await etcd.get(record.key)?.modRevision
    }

    /// Marks the move of `partition` to `node` failed, if it is still copying:
    /// a write did not reach the joining node, so its copy cannot be trusted.
    /// Returns false when no such move is copying (it finished, or was undone).
    public func markFailed(partition: Int, node: String, reason: String) async throws(RagError) -> Bool {
        for _ in 0..<8 {
            guard let (record, revision) = try await moves().first(where: { $0.0.partition == partition }),
                  record.to == node, record.phase == "copying" || record.phase == "failed" else { return false }
            if record.phase == "failed" { return true }
            var failed = record
            failed.phase = "failed"
            failed.error = reason
            if try await etcd.transaction([.modRevision(record.key, revision)], [.put(record.key, try Self.encode(failed))]) { return true }
        }
        throw RagError(.unavailable, "could not record the failed move of partition \(partition) in etcd")
    }

    static func encode(_ value: some Encodable) throws(RagError) -> Data {
        do { return try JSONEncoder().encode(value) } catch { throw RagError(.internal, "etcd record: \(error)") }
    }
}
