import CHiredis
import Foundation
import NIOPosix
import RagCore
import Synchronization

/// A few hiredis connections (Debian's libhiredis) used from async code:
/// blocking calls run on a thread pool with one thread per connection, so up to
/// `connections` commands are in flight at once instead of queueing behind one
/// lock. Each call is bounded by the socket timeout. After a failure, new
/// connections are attempted at most once a second, so a Redis outage costs a
/// caller at most `timeout` and then fails fast.
public final class RedisConnection: @unchecked Sendable {
    public let host: String
    public let port: Int
    public let timeout: Duration
    let pool: NIOThreadPool
    /// One hiredis context per pool thread. A context is not thread-safe: a job
    /// takes a slot from `idle` and gives it back, so no two threads share one.
    private let slots: [Slot]
    private let idle: Mutex<[Int]>
    private let retryAfter = Mutex<ContinuousClock.Instant>(.now - .seconds(1))

    final class Slot: @unchecked Sendable {
        var context: UnsafeMutablePointer<redisContext>?
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

    public init(host: String, port: Int, timeout: Duration, connections: Int = 4) {
        self.host = host
        self.port = port
        self.timeout = timeout
        let n = max(1, connections)
        slots = (0..<n).map { _ in Slot() }
        idle = Mutex(Array(0..<n))
        pool = NIOThreadPool(numberOfThreads: n)
        pool.start()
    }

    deinit {
        for slot in slots { if let ctx = slot.context { redisFree(ctx) } }
        try? pool.syncShutdownGracefully()
    }

    var tv: timeval {
        let us = timeout.inMicroseconds
        return timeval(tv_sec: Int(us / 1_000_000), tv_usec: Int(us % 1_000_000))
    }

    /// Runs one command; UNAVAILABLE on a connection problem, a timeout or an error reply.
    public func command(_ args: [Data]) async throws -> Reply {
        try await pipeline([args])[0].get()
    }

    /// Sends several commands in one round trip and reads their replies in order.
    /// A connection failure fails the whole call; an error reply fails only its entry.
    public func pipeline(_ commands: [[Data]]) async throws -> [Result<Reply, RagError>] {
        try await pool.runIfActive { [self] in
            // As many jobs run as there are threads and slots, so one is always idle here.
            let index = idle.withLock { $0.popLast()! }
            defer { idle.withLock { $0.append(index) } }
            let slot = slots[index]
            let ctx = try connected(slot)
            for args in commands {
                let rc = args.withCStrings { argv, lens in redisAppendCommandArgv(ctx, Int32(args.count), argv, lens) }
                if rc != REDIS_OK { throw broken(slot) }
            }
            var out: [Result<Reply, RagError>] = []
            out.reserveCapacity(commands.count)
            for _ in commands {
                var raw: UnsafeMutableRawPointer?
                guard redisGetReply(ctx, &raw) == REDIS_OK, let raw else { throw broken(slot) }
                defer { freeReplyObject(raw) }
                out.append(Result { try Self.convert(raw.assumingMemoryBound(to: redisReply.self).pointee) }.mapError { RagError(from: $0) })
            }
            return out
        }
    }

    private func connected(_ slot: Slot) throws -> UnsafeMutablePointer<redisContext> {
        if let ctx = slot.context { return ctx }
        guard retryAfter.withLock({ ContinuousClock.now >= $0 }) else {
            throw RagError.unavailable("redis at \(host):\(port) is down (retrying shortly)")
        }
        guard let ctx = redisConnectWithTimeout(host, Int32(port), tv), ctx.pointee.err == 0 else {
            retryAfter.withLock { $0 = .now + .seconds(1) }
            throw RagError.unavailable("cannot connect to redis at \(host):\(port)")
        }
        redisSetTimeout(ctx, tv)
        slot.context = ctx
        return ctx
    }

    /// Drops a failed connection and describes why it failed.
    private func broken(_ slot: Slot) -> RagError {
        guard let ctx = slot.context else { return RagError.unavailable("redis connection lost") }
        // Copied while the context is alive: hiredis owns `errstr`, and a pointer
        // to it must not outlive this expression (it used to, and logged garbage).
        let message = withUnsafeBytes(of: ctx.pointee.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        redisFree(ctx)
        slot.context = nil
        retryAfter.withLock { $0 = .now + .seconds(1) }
        return RagError.unavailable("redis error: \(message.isEmpty ? "connection lost" : message)")
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
