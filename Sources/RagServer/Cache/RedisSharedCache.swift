import CHiredis
import Foundation
import NIOPosix
import RagCore
import Synchronization

/// Redis L2 through hiredis (Debian's libhiredis), for several coordinators
/// sharing one cache. Blocking hiredis calls run on a small thread pool, each
/// bounded by the socket timeout, so a slow Redis costs a query at most the
/// timeout and is then a miss. After a failure the connection is retried at
/// most once a second.
public final class RedisSharedCache: SharedCache, @unchecked Sendable {
    public var name: String { "redis" }
    public let host: String
    public let port: Int
    public let timeout: Duration
    let prefix: String
    let pool: NIOThreadPool
    // The hiredis context is not thread-safe: only touched under `lock`.
    private let lock = Mutex<Connection>(Connection())

    struct Connection {
        var context: UnsafeMutablePointer<redisContext>?
        var retryAfter: ContinuousClock.Instant = .now - .seconds(1)
    }

    public init(host: String, port: Int, timeout: Duration = .milliseconds(50), prefix: String = "ragd:") {
        self.host = host
        self.port = port
        self.timeout = timeout
        self.prefix = prefix
        pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
    }

    deinit {
        lock.withLock { c in if let ctx = c.context { redisFree(ctx) } }
        try? pool.syncShutdownGracefully()
    }

    enum Reply {
        case string(Data)
        case integer(Int64)
        case null
        case status(String)
    }

    var tv: timeval {
        let us = timeout.components.seconds * 1_000_000 + timeout.components.attoseconds / 1_000_000_000_000
        return timeval(tv_sec: Int(us / 1_000_000), tv_usec: Int(us % 1_000_000))
    }

    /// Runs one command; throws UNAVAILABLE on any connection problem or timeout.
    func command(_ args: [Data]) async throws -> Reply {
        try await pool.runIfActive { [self] in
            try lock.withLock { conn -> Reply in
                if conn.context == nil {
                    guard ContinuousClock.now >= conn.retryAfter else { throw RagError.unavailable("redis at \(host):\(port) is down (retrying shortly)") }
                    guard let ctx = redisConnectWithTimeout(host, Int32(port), tv), ctx.pointee.err == 0 else {
                        conn.retryAfter = .now + .seconds(1)
                        throw RagError.unavailable("cannot connect to redis at \(host):\(port)")
                    }
                    redisSetTimeout(ctx, tv)
                    conn.context = ctx
                }
                let ctx = conn.context!
                let reply: UnsafeMutableRawPointer? = args.withCStrings { argv, lens in
                    redisCommandArgv(ctx, Int32(args.count), argv, lens)
                }
                guard let raw = reply else {
                    let message = String(cString: withUnsafePointer(to: ctx.pointee.errstr) { $0.withMemoryRebound(to: CChar.self, capacity: 128) { $0 } })
                    redisFree(ctx)
                    conn.context = nil
                    conn.retryAfter = .now + .seconds(1)
                    throw RagError.unavailable("redis error: \(message)")
                }
                defer { freeReplyObject(raw) }
                let r = raw.assumingMemoryBound(to: redisReply.self).pointee
                switch r.type {
                case REDIS_REPLY_STRING: return .string(Data(bytes: r.str, count: r.len))
                case REDIS_REPLY_INTEGER: return .integer(r.integer)
                case REDIS_REPLY_NIL: return .null
                case REDIS_REPLY_STATUS: return .status(String(cString: r.str))
                case REDIS_REPLY_ERROR: throw RagError.unavailable("redis: \(String(cString: r.str))")
                default: return .null
                }
            }
        }
    }

    public func get(_ key: String) async throws -> Data? {
        if case .string(let d) = try await command([Data("GET".utf8), Data((prefix + "q:" + key).utf8)]) { return d }
        return nil
    }

    public func set(_ key: String, _ value: Data, ttl: Duration) async throws {
        let ms = max(1, ttl.components.seconds * 1000 + ttl.components.attoseconds / 1_000_000_000_000_000)
        _ = try await command([Data("SET".utf8), Data((prefix + "q:" + key).utf8), value, Data("PX".utf8), Data("\(ms)".utf8)])
    }

    /// Bumps a global epoch that is part of every key: all old entries become
    /// unreachable at once (and expire by their TTL) without scanning keys.
    public func clear() async throws {
        _ = try await command([Data("INCR".utf8), Data((prefix + "epoch").utf8)])
    }

    public func generation(_ collection: String) async throws -> Int64 {
        // The epoch (bumped by clear) and the collection's write counter.
        let epoch = try await command([Data("GET".utf8), Data((prefix + "epoch").utf8)])
        let gen = try await command([Data("GET".utf8), Data((prefix + "gen:" + collection).utf8)])
        func n(_ r: Reply) -> Int64 { if case .string(let d) = r { return Int64(String(decoding: d, as: UTF8.self)) ?? 0 }; return 0 }
        return n(epoch) << 32 &+ n(gen)
    }

    public func bumpGeneration(_ collection: String) async throws {
        _ = try await command([Data("INCR".utf8), Data((prefix + "gen:" + collection).utf8)])
    }

    /// PING, for health checks and tests.
    public func ping() async throws -> Bool {
        if case .status(let s) = try await command([Data("PING".utf8)]) { return s == "PONG" }
        return false
    }
}

extension Array where Element == Data {
    /// Calls `body` with C argv/argvlen arrays pointing into these buffers.
    func withCStrings<R>(_ body: (UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R) -> R {
        let lengths = map(\.count)
        let buffers = map { d -> UnsafeMutablePointer<CChar> in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: Swift.max(1, d.count))
            d.withUnsafeBytes { raw in if let base = raw.baseAddress { p.withMemoryRebound(to: UInt8.self, capacity: d.count) { $0.update(from: base.assumingMemoryBound(to: UInt8.self), count: d.count) } } }
            return p
        }
        defer { buffers.forEach { $0.deallocate() } }
        var argv: [UnsafePointer<CChar>?] = buffers.map { UnsafePointer($0) }
        return argv.withUnsafeMutableBufferPointer { a in lengths.withUnsafeBufferPointer { l in body(a.baseAddress!, l.baseAddress!) } }
    }
}
