import CHiredis
import Foundation
import NIOPosix
import RagCore
import Synchronization

/// One hiredis connection (Debian's libhiredis) used from async code: blocking
/// calls run on a small thread pool, each bounded by the socket timeout. After
/// a failure the connection is re-established at most once a second, so a
/// Redis outage costs each caller at most `timeout` and then fails fast.
public final class RedisConnection: @unchecked Sendable {
    public let host: String
    public let port: Int
    public let timeout: Duration
    let pool: NIOThreadPool
    // The hiredis context is not thread-safe: only touched under `lock`.
    private let lock = Mutex<State>(State())

    struct State {
        var context: UnsafeMutablePointer<redisContext>?
        var retryAfter: ContinuousClock.Instant = .now - .seconds(1)
    }

    /// A reply in RESP2 form.
    public indirect enum Reply: Sendable, Equatable {
        case string(Data)
        case integer(Int64)
        case null
        case status(String)
        case array([Reply])

        public var data: Data? { if case .string(let d) = self { return d }; return nil }
        public var text: String? { data.map { String(decoding: $0, as: UTF8.self) } }
        public var integer: Int64? {
            switch self {
            case .integer(let n): return n
            case .string(let d): return Int64(String(decoding: d, as: UTF8.self))
            default: return nil
            }
        }
        public var array: [Reply] { if case .array(let a) = self { return a }; return [] }
    }

    public init(host: String, port: Int, timeout: Duration, threads: Int = 2) {
        self.host = host
        self.port = port
        self.timeout = timeout
        pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    deinit {
        lock.withLock { c in if let ctx = c.context { redisFree(ctx) } }
        try? pool.syncShutdownGracefully()
    }

    var tv: timeval {
        let us = timeout.inMicroseconds
        return timeval(tv_sec: Int(us / 1_000_000), tv_usec: Int(us % 1_000_000))
    }

    /// Runs one command; UNAVAILABLE on a connection problem, a timeout or an error reply.
    public func command(_ args: [Data]) async throws -> Reply {
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
                return try Self.convert(raw.assumingMemoryBound(to: redisReply.self).pointee)
            }
        }
    }

    /// `command` with string arguments.
    public func command(_ args: String...) async throws -> Reply {
        try await command(args.map { Data($0.utf8) })
    }

    static func convert(_ r: redisReply) throws -> Reply {
        switch r.type {
        case REDIS_REPLY_STRING: return .string(Data(bytes: r.str, count: r.len))
        case REDIS_REPLY_INTEGER: return .integer(r.integer)
        case REDIS_REPLY_NIL: return .null
        case REDIS_REPLY_STATUS: return .status(String(cString: r.str))
        case REDIS_REPLY_ERROR: throw RagError.unavailable("redis: \(String(cString: r.str))")
        case REDIS_REPLY_ARRAY:
            var items: [Reply] = []
            items.reserveCapacity(r.elements)
            for i in 0..<r.elements {
                guard let e = r.element[i] else { items.append(.null); continue }
                items.append(try convert(e.pointee))
            }
            return .array(items)
        default: return .null
        }
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
