import Foundation
import Logging
import RagClient
import RagCore
import RagWire
import Synchronization

/// One shard replica as the coordinator sees it: a pooled, kept-alive
/// connection (reconnected after the replica restarts) and its health.
public final class Replica: Sendable {
    public let shard: Int
    public let address: String
    let client: RagClient

    struct Health {
        var latency: Double = 0
        var downSince: ContinuousClock.Instant?
        var lastError = ""
    }

    let health = Mutex(Health())

    init(shard: Int, address: String, tls: ClientTLS?) throws(RagError) {
        self.shard = shard
        self.address = address
        let (host, port) = try ClusterConfiguration.address(address)
        client = RagClient(host: host, port: port, tls: tls)
    }

    func succeeded(latency: Double) { health.withLock { $0.latency = latency; $0.downSince = nil } }

    func failed(_ error: RagError) {
        health.withLock { h in
            if h.downSince == nil { h.downSince = .now }
            h.lastError = error.description
        }
    }

    var isDown: Bool { health.withLock { $0.downSince != nil } }
}

/// The shards of a cluster and their replicas, shared by every collection's
/// `RemoteShard`s, plus the hinted-handoff log and its replayer.
public final class Cluster: Sendable {
    public let configuration: ClusterConfiguration
    public let replicas: [[Replica]]
    public let hints: HintLog
    let logger: Logger

    /// `tls`: the coordinator's client certificate and the cluster CA, for the
    /// shards' internal listeners (nil: plain TCP, only with --insecure).
    public init(configuration: ClusterConfiguration, hintPath: String, tls: ClientTLS? = nil, logger: Logger) throws(RagError) {
        self.configuration = configuration
        var all: [[Replica]] = []
        for s in configuration.shards.sorted(by: { $0.id < $1.id }) {
            var rs: [Replica] = []
            for a in s.replicas { rs.append(try Replica(shard: s.id, address: a, tls: tls)) }
            all.append(rs)
        }
        replicas = all
        hints = try HintLog(path: hintPath)
        self.logger = logger
    }

    public var shardCount: Int { replicas.count }

    public func writeQuorum(_ shard: Int) -> Int { configuration.writeQuorum ?? replicas[shard].count }

    /// Health of every replica, for `Health` on the coordinator.
    public func health() -> [Ragd_V1_ReplicaHealth] {
        replicas.flatMap { $0 }.map { r in
            let h = r.health.withLock { $0 }
            let pending = hints.count(r.address)
            return Ragd_V1_ReplicaHealth.with {
                $0.shard = UInt32(r.shard)
                $0.address = r.address
                $0.state = h.downSince != nil ? "down" : (pending > 0 ? "lagging" : "up")
                $0.latencySeconds = h.latency
                $0.pendingWrites = UInt64(pending)
            }
        }
    }

    /// Replays hinted writes to replicas that answer again, oldest first, until
    /// cancelled. A replica catches up before it is considered current.
    public func replayHints() async {
        while !Task.isCancelled {
            for r in replicas.flatMap({ $0 }) where hints.count(r.address) > 0 {
                while let hint = try? hints.oldest(r.address) {
                    do {
                        let t = ContinuousClock.now
                        _ = try await r.client.unary(.shardWrite, payload: hint.payload, timeout: .seconds(5))
                        r.succeeded(latency: t.elapsedSeconds)
                        try hints.remove(hint.id, replica: r.address)
                    } catch {
                        r.failed(RagError(from: error))
                        break
                    }
                }
                if hints.count(r.address) == 0 { logger.info("replica \(r.address) of shard \(r.shard) caught up") }
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    public func close() async {
        for r in replicas.flatMap({ $0 }) { await r.client.close() }
        hints.close()
    }
}
