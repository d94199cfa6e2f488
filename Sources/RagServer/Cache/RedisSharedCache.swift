import Foundation
import RagCore

/// Redis L2, for several coordinators sharing one cache. Each command is
/// bounded by the (short) timeout, so a slow Redis costs a query at most the
/// timeout and is then a miss.
public final class RedisSharedCache: SharedCache, Sendable {
    public var name: String { "redis" }
    public var host: String { redis.host }
    public var port: Int { redis.port }
    let prefix: String
    let redis: RedisConnection

    public init(host: String, port: Int, timeout: Duration = .milliseconds(50), prefix: String = "ragd:") {
        self.prefix = prefix
        redis = RedisConnection(host: host, port: port, timeout: timeout, connections: 4)
    }

    public func get(_ key: String) async throws -> Data? {
        try await redis.command([Data("GET".utf8), Data((prefix + "q:" + key).utf8)]).data
    }

    public func set(_ key: String, _ value: Data, ttl: Duration) async throws {
        _ = try await redis.command([Data("SET".utf8), Data((prefix + "q:" + key).utf8), value, Data("PX".utf8), Data("\(max(1, ttl.inMilliseconds))".utf8)])
    }

    /// Bumps a global epoch that is part of every key: all old entries become
    /// unreachable at once (and expire by their TTL) without scanning keys.
    public func clear() async throws {
        _ = try await epoch()
        _ = try await redis.command("INCR", prefix + "epoch")
    }

    /// The epoch starts at a random value, not 0: when Redis loses its data (a
    /// restart without persistence, a FLUSHALL) the write counters start again
    /// from 0, and without a fresh epoch a coordinator's in-process entries from
    /// before could match again and serve answers that miss writes made since.
    func epoch() async throws -> Int64 {
        if let e = try await redis.command("GET", prefix + "epoch").integer { return e }
        _ = try await redis.command("SET", prefix + "epoch", "\(Int64.random(in: 1..<(1 << 31)))", "NX")
        return try await redis.command("GET", prefix + "epoch").integer ?? 0
    }

    /// One round trip (MGET of the epoch and the collection's write counter);
    /// a second only the first time, to seed the epoch.
    public func generation(_ collection: String) async throws -> Int64 {
        let r = try await redis.command("MGET", prefix + "epoch", prefix + "gen:" + collection).array
        guard r.count == 2 else { throw RagError.unavailable("redis: unexpected MGET reply") }
        var epoch = r[0].integer
        if epoch == nil { epoch = try await self.epoch() }
        return epoch! << 32 &+ (r[1].integer ?? 0)
    }

    public func bumpGeneration(_ collection: String) async throws {
        _ = try await redis.command("INCR", prefix + "gen:" + collection)
    }

    /// PING, for health checks and tests.
    public func ping() async throws -> Bool {
        try await redis.command("PING") == .status("PONG")
    }
}
