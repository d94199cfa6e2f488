import Foundation
import Logging
import RagCore

/// What a node says of itself in etcd (`/ragd/nodes/<id>`, under a lease).
public struct NodeInfo: Sendable, Hashable, Codable {
    public var id: String
    public var role: String
    /// Where clients and operators reach it (Health, Stats).
    public var publicAddress: String
    /// Where coordinators send shard RPCs (mutual TLS); empty for coordinators.
    public var internalAddress: String
    public var version: String
    public var startedAt: Double
    /// Capacity: chunks stored and free bytes on the data directory's disk.
    public var chunks: Int
    public var freeBytes: Int64
}

/// Keeps a node registered in etcd under a lease: registers, renews the lease
/// every third of its TTL, refreshes the capacity figures, and registers again
/// when the lease was lost (etcd down longer than the TTL, or the process was
/// stopped). A node that dies stops renewing, and its entry expires with the lease.
public final class NodeRegistration: Sendable {
    public static let prefix = "/ragd/nodes/"
    let etcd: EtcdClient
    let ttl: Int
    let logger: Logger
    let describe: @Sendable () async -> NodeInfo

    public init(etcd: EtcdClient, ttl: Int = 6, logger: Logger, describe: @escaping @Sendable () async -> NodeInfo) {
        self.etcd = etcd
        self.ttl = max(2, ttl)
        self.logger = logger
        self.describe = describe
    }

    /// Runs until cancelled.
    public func run() async {
        var lease: Int64 = 0
        let every = Duration.milliseconds(ttl * 1000 / 3)
        while !Task.isCancelled {
            do {
                if lease == 0 {
                    lease = try await etcd.grantLease(ttl: ttl)
                    let id = try await publish(lease)
                    logger.info("registered in etcd as \(NodeRegistration.prefix)\(id) (lease TTL \(ttl) s)")
                } else if try await etcd.keepAlive(lease) == 0 {
                    logger.warning("etcd lease expired; registering again")
                    lease = 0
                    continue
                } else {
                    try await publish(lease)  // capacity figures move
                }
            } catch {
                logger.warning("etcd registration: \(error)")
            }
            try? await Task.sleep(for: every)
        }
        // Stopping on purpose: leave the membership now rather than at the lease's expiry.
        if lease != 0 { try? await etcd.revokeLease(lease) }
    }

    @discardableResult
    func publish(_ lease: Int64) async throws(RagError) -> String {
        let info = await describe()
        let data: Data
        do { data = try JSONEncoder().encode(info) } catch { throw RagError(.internal, "node entry: \(error)") }
        try await etcd.put(Self.prefix + info.id, data, lease: lease)
        return info.id
    }

    /// Every node registered now (entries of expired leases are gone).
    public static func nodes(_ etcd: EtcdClient) async throws(RagError) -> [NodeInfo] {
        try await etcd.list(prefix: prefix).kvs.compactMap { try? JSONDecoder().decode(NodeInfo.self, from: $0.value) }
    }

    /// Free bytes on the file system holding `path`.
    static func freeBytes(_ path: String) -> Int64 {
        let attrs = try? FileManager.default.attributesOfFileSystem(forPath: path)
        return (attrs?[.systemFreeSize] as? NSNumber)?.int64Value ?? 0
    }
}
