import Foundation
import RagCore
import RagWire
import Synchronization

/// Jobs in Redis, for workers on several machines: one Redis Stream per job
/// kind read through the consumer group `workers`, so each delivery goes to
/// one worker and stays in the group's pending list until that worker acks it.
/// A running worker renews its claim every third of the visibility timeout; a
/// worker that dies stops renewing, and after the timeout another worker takes
/// the delivery over with XAUTOCLAIM and runs the job again (index jobs are
/// idempotent). Idle workers wait in XREADGROUP BLOCK (a connection each).
/// Job records are hashes; retries wait in a sorted set until due.
/// State changes that must not race (claim, finish, cancel) are Lua scripts.
public final class RedisJobQueue: JobQueue {
    public var backend: String { "redis" }
    let redis: RedisConnection
    let prefix: String
    let visibilityTimeout: Duration
    static let group = "workers"
    /// Job id → (stream, entry id) of the deliveries this process holds.
    private let deliveries = Mutex<[String: (stream: String, entry: String)]>([:])
    private let groupsReady = Mutex<Set<String>>([])
    private let lastSweep = Mutex<ContinuousClock.Instant>(.now)

    /// Connections for blocking reads, one per waiting worker (a blocked
    /// connection cannot carry other commands).
    private let idleReaders = Mutex<[RedisConnection]>([])
    let blockFor: Duration
    let timeout: Duration

    /// `blockFor`: how long a claim waits on the stream for a new job (XREADGROUP BLOCK).
    public init(host: String, port: Int, prefix: String = "ragd:jobs:", visibilityTimeout: Duration, timeout: Duration = .seconds(5),
                blockFor: Duration = .seconds(1)) {
        redis = RedisConnection(host: host, port: port, timeout: timeout)
        self.prefix = prefix
        self.visibilityTimeout = visibilityTimeout
        self.blockFor = blockFor
        self.timeout = timeout
    }

    /// XREADGROUP … BLOCK on a connection of its own: an idle worker waits in
    /// Redis for the next job instead of polling.
    func readNew(_ kind: String, worker: String) async throws -> [(String, String)] {
        let reader = idleReaders.withLock { $0.popLast() } ?? RedisConnection(host: redis.host, port: redis.port, timeout: blockFor + timeout, connections: 1)
        defer { idleReaders.withLock { $0.append(reader) } }
        let r = try await reader.command("XREADGROUP", "GROUP", Self.group, worker, "COUNT", "1", "BLOCK", "\(max(1, blockFor.inMilliseconds))", "STREAMS", stream(kind), ">")
        return Self.entries(r.array.first?.array.dropFirst().first)
    }

    func jobKey(_ id: String) -> String { prefix + "job:" + id }
    func stream(_ kind: String) -> String { prefix + "stream:" + kind }
    func delayed(_ kind: String) -> String { prefix + "delayed:" + kind }
    var allKey: String { prefix + "all" }
    static var now: String { String(Date().timeIntervalSince1970) }

    func eval(_ script: String, keys: [String], _ args: [Data]) async throws -> RedisConnection.Reply {
        try await redis.command([Data("EVAL".utf8), Data(script.utf8), Data("\(keys.count)".utf8)] + keys.map { Data($0.utf8) } + args)
    }

    public func create(id: String, kind: String, spec: Data, part: Data?, total: Int, staging: Bool) async throws {
        let script = """
            redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'spec', ARGV[2], 'state', ARGV[3], 'attempts', 0, 'created_at', ARGV[4],
                       'updated_at', ARGV[4], 'started_at', 0, 'finished_at', 0, 'progress_done', 0, 'progress_total', ARGV[5], 'worker', '')
            if ARGV[7] == '1' then redis.call('RPUSH', KEYS[1] .. ':parts', ARGV[8]) end
            redis.call('ZADD', KEYS[2], ARGV[4], ARGV[6])
            if ARGV[3] == 'queued' then redis.call('XADD', KEYS[3], '*', 'id', ARGV[6]) end
            return 1
            """
        let args = [Data(kind.utf8), spec, Data((staging ? "staging" : "queued").utf8), Data(Self.now.utf8), Data("\(total)".utf8),
                    Data(id.utf8), Data((part == nil ? "0" : "1").utf8), part ?? Data()]
        _ = try await eval(script, keys: [jobKey(id), allKey, stream(kind)], args)
    }

    public func append(id: String, part: Data, count: Int, seal: Bool) async throws {
        let script = """
            local s = redis.call('HGET', KEYS[1], 'state')
            if not s then return redis.error_reply('NOTFOUND') end
            if s ~= 'staging' then return redis.error_reply('STATE ' .. s) end
            redis.call('RPUSH', KEYS[1] .. ':parts', ARGV[1])
            redis.call('HINCRBY', KEYS[1], 'progress_total', ARGV[2])
            redis.call('HSET', KEYS[1], 'updated_at', ARGV[5])
            if ARGV[3] == '1' then
                redis.call('HSET', KEYS[1], 'state', 'queued')
                redis.call('XADD', KEYS[2], '*', 'id', ARGV[4])
            end
            return 1
            """
        do {
            _ = try await eval(script, keys: [jobKey(id), stream("index")], [part, Data("\(count)".utf8), Data((seal ? "1" : "0").utf8), Data(id.utf8), Data(Self.now.utf8)])
        } catch let e as RagError where e.message.contains("NOTFOUND") {
            throw RagError.notFound("job \(id.debugDescription) does not exist")
        } catch let e as RagError where e.message.contains("STATE ") {
            throw RagError.failedPrecondition("job \(id) is not staging: it takes no more documents")
        }
    }

    public func partCount(id: String) async throws -> Int {
        Int(try await redis.command("LLEN", jobKey(id) + ":parts").integer ?? 0)
    }

    public func part(id: String, index: Int) async throws -> Data {
        guard let d = try await redis.command("LINDEX", jobKey(id) + ":parts", "\(index)").data else {
            throw RagError(.dataLoss, "job \(id) has lost its part \(index)")
        }
        return d
    }

    func ensureGroup(_ kind: String) async throws {
        if groupsReady.withLock({ $0.contains(kind) }) { return }
        do {
            _ = try await redis.command("XGROUP", "CREATE", stream(kind), Self.group, "0", "MKSTREAM")
        } catch let e as RagError where e.message.contains("BUSYGROUP") {}
        groupsReady.withLock { _ = $0.insert(kind) }
    }

    public func claim(kind: String, worker: String) async throws -> ClaimedJob? {
        do {
            return try await claimOnce(kind: kind, worker: worker)
        } catch let e as RagError where e.message.contains("NOGROUP") {
            // Redis lost the stream (a restart without persistence, a failover, a
            // FLUSHALL): create the group again on the next claim.
            groupsReady.withLock { _ = $0.remove(kind) }
            throw e
        }
    }

    func claimOnce(kind: String, worker: String) async throws -> ClaimedJob? {
        try await ensureGroup(kind)
        try await sweepConsumers(kind, sweeper: worker)
        // Retries whose backoff is over go back on the stream (once: ZREM decides).
        _ = try await eval("""
            local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 10)
            for _, id in ipairs(ids) do
                if redis.call('ZREM', KEYS[1], id) == 1 then redis.call('XADD', KEYS[2], '*', 'id', id) end
            end
            return #ids
            """, keys: [delayed(kind), stream(kind)], [Data(Self.now.utf8)])
        // Deliveries of workers that stopped renewing their claim come first.
        var entries = Self.entries(try await redis.command("XAUTOCLAIM", stream(kind), Self.group, worker, "\(visibilityTimeout.inMilliseconds)", "0-0", "COUNT", "1")
            .array.dropFirst().first)
        if entries.isEmpty { entries = try await readNew(kind, worker: worker) }
        for (entry, id) in entries {
            let r = try await eval("""
                local s = redis.call('HGET', KEYS[1], 'state')
                if s ~= 'queued' and s ~= 'running' then return false end
                local a = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
                if s == 'running' then
                    redis.call('RPUSH', KEYS[1] .. ':errors', 'attempt ' .. (a - 1) .. ': worker ' .. redis.call('HGET', KEYS[1], 'worker') ..
                               ' stopped renewing its claim; re-delivered to ' .. ARGV[1])
                end
                redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'started_at', ARGV[2])
                return {a, redis.call('HGET', KEYS[1], 'spec')}
                """, keys: [jobKey(id)], [Data(worker.utf8), Data(Self.now.utf8)])
            let fields = r.array
            guard fields.count == 2, let attempt = fields[0].integer, let spec = fields[1].data else {
                // Cancelled or already finished: nothing to run.
                _ = try? await redis.command("XACK", stream(kind), Self.group, entry)
                _ = try? await redis.command("XDEL", stream(kind), entry)
                continue
            }
            deliveries.withLock { $0[id] = (stream(kind), entry) }
            return ClaimedJob(id: id, spec: spec, attempt: Int(attempt))
        }
        return nil
    }

    /// Workers that stopped stay listed in the group; once one holds no deliveries
    /// and has been silent for three visibility timeouts (a live worker polls
    /// every 100 ms), remove it. Checked once per visibility timeout. Never the
    /// sweeper itself: it is alive, though Redis (before 7.2) counts a consumer
    /// idle from its last delivery, not its last read.
    func sweepConsumers(_ kind: String, sweeper: String) async throws {
        let due = lastSweep.withLock { last in
            guard last.duration(to: .now) > visibilityTimeout else { return false }
            last = .now
            return true
        }
        guard due else { return }
        let silentMS = 3 * visibilityTimeout.inMilliseconds
        for c in try await redis.command("XINFO", "CONSUMERS", stream(kind), Self.group).array {
            var info: [String: RedisConnection.Reply] = [:]
            let kv = c.array
            for i in stride(from: 0, to: kv.count - 1, by: 2) { if let k = kv[i].text { info[k] = kv[i + 1] } }
            guard let name = info["name"]?.text, name != sweeper, info["pending"]?.integer == 0, (info["idle"]?.integer ?? 0) > silentMS else { continue }
            _ = try await redis.command("XGROUP", "DELCONSUMER", stream(kind), Self.group, name)
        }
    }

    /// (entry id, job id) pairs from an XREADGROUP / XAUTOCLAIM entry list.
    static func entries(_ list: RedisConnection.Reply?) -> [(String, String)] {
        (list?.array ?? []).compactMap { e in
            let parts = e.array
            guard parts.count == 2, let entry = parts[0].text else { return nil }
            let fields = parts[1].array.compactMap(\.text)
            guard let i = fields.firstIndex(of: "id"), i + 1 < fields.count else { return nil }
            return (entry, fields[i + 1])
        }
    }

    public func heartbeat(id: String, worker: String) async throws -> ClaimStatus {
        guard let d = deliveries.withLock({ $0[id] }) else { return .lost }
        let r = try await eval("""
            if redis.call('HGET', KEYS[2], 'state') == 'cancelled' then return 2 end
            local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
            if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
            redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
            return 1
            """, keys: [d.stream, jobKey(id)], [Self.group, d.entry, worker].map { Data($0.utf8) })
        switch r.integer {
        case 1: return .owned
        case 2: return .cancelled
        default:
            deliveries.withLock { $0[id] = nil }
            return .lost
        }
    }

    public func progress(id: String, worker: String, done: Int) async throws -> ClaimStatus {
        let r = try await eval("""
            local s = redis.call('HGET', KEYS[1], 'state')
            if s == 'cancelled' then return 2 end
            if s ~= 'running' or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then return 0 end
            redis.call('HSET', KEYS[1], 'progress_done', ARGV[1])
            return 1
            """, keys: [jobKey(id)], [Data("\(done)".utf8), Data(worker.utf8)])
        switch r.integer {
        case 1: return .owned
        case 2: return .cancelled
        default: return .lost
        }
    }

    /// Acks and deletes the delivery this process holds for `id`.
    func ack(_ id: String) async {
        guard let d = deliveries.withLock({ $0.removeValue(forKey: id) }) else { return }
        _ = try? await redis.command("XACK", d.stream, Self.group, d.entry)
        _ = try? await redis.command("XDEL", d.stream, d.entry)
    }

    public func finish(id: String, result: Data) async throws {
        _ = try await eval("""
            if redis.call('HGET', KEYS[1], 'state') == 'cancelled' then return 0 end
            redis.call('HSET', KEYS[1], 'state', 'succeeded', 'result', ARGV[1], 'finished_at', ARGV[2])
            redis.call('DEL', KEYS[1] .. ':parts')
            return 1
            """, keys: [jobKey(id)], [result, Data(Self.now.utf8)])
        await ack(id)
    }

    public func failAttempt(id: String, error: String, retryAfter backoff: Double?) async throws {
        let kind = try await redis.command("HGET", jobKey(id), "kind").text ?? "index"
        let next = Date().timeIntervalSince1970 + (backoff ?? 0)
        _ = try await eval("""
            redis.call('RPUSH', KEYS[1] .. ':errors', ARGV[1])
            if redis.call('HGET', KEYS[1], 'state') == 'cancelled' then return 0 end
            if ARGV[2] ~= '' then
                redis.call('RPUSH', KEYS[1] .. ':backoffs', ARGV[2])
                redis.call('HSET', KEYS[1], 'state', 'queued')
                redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
            else
                redis.call('HSET', KEYS[1], 'state', 'failed', 'finished_at', ARGV[3])
                redis.call('DEL', KEYS[1] .. ':parts')
            end
            return 1
            """, keys: [jobKey(id), delayed(kind)], [error, backoff.map { String($0) } ?? "", Self.now, String(next), id].map { Data($0.utf8) })
        await ack(id)
    }

    public func handBack(id: String, note: String) async throws {
        guard let d = deliveries.withLock({ $0[id] }) else { return }
        _ = try await eval("""
            if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
            redis.call('RPUSH', KEYS[1] .. ':errors', ARGV[1])
            redis.call('HSET', KEYS[1], 'state', 'queued')
            redis.call('XADD', KEYS[2], '*', 'id', ARGV[2])
            return 1
            """, keys: [jobKey(id), d.stream], [Data(note.utf8), Data(id.utf8)])
        await ack(id)
    }

    public func release(id: String) async {
        await ack(id)
        _ = try? await redis.command("DEL", jobKey(id) + ":parts")
    }

    public func cancel(id: String) async throws -> Bool {
        let r = try await eval("""
            local s = redis.call('HGET', KEYS[1], 'state')
            if s ~= 'staging' and s ~= 'queued' and s ~= 'running' then return 0 end
            redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1])
            if s ~= 'running' then redis.call('DEL', KEYS[1] .. ':parts') end
            return 1
            """, keys: [jobKey(id)], [Data(Self.now.utf8)])
        return r.integer == 1
    }

    static let fields = ["kind", "state", "attempts", "created_at", "started_at", "finished_at", "progress_done", "progress_total", "result", "worker",
                         "spec"]

    /// One round trip (GetJob is what waiting clients poll).
    public func get(id: String) async throws -> Ragd_V1_Job? {
        let reply = try await eval("""
            return {redis.call('HMGET', KEYS[1], unpack(ARGV)), redis.call('LRANGE', KEYS[1] .. ':errors', 0, -1),
                    redis.call('LRANGE', KEYS[1] .. ':backoffs', 0, -1)}
            """, keys: [jobKey(id)], Self.fields.map { Data($0.utf8) }).array
        guard reply.count == 3 else { return nil }
        let values = reply[0].array
        guard values.count == Self.fields.count, let kind = values[0].text else { return nil }
        let errors = reply[1].array.compactMap(\.text)
        let backoffs = reply[2].array.compactMap { $0.text.flatMap(Double.init) }
        func number(_ i: Int) -> Double { values[i].text.flatMap(Double.init) ?? 0 }
        return Ragd_V1_Job.with {
            $0.id = id
            $0.kind = kind
            $0.state = values[1].text ?? ""
            $0.attempts = UInt32(number(2))
            $0.createdAt = number(3)
            $0.startedAt = number(4)
            $0.finishedAt = number(5)
            $0.progressDone = UInt64(number(6))
            $0.progressTotal = UInt64(number(7))
            $0.result = values[8].data ?? Data()
            $0.worker = values[9].text ?? ""
            $0.errors = errors
            $0.backoffSeconds = backoffs
            $0.backend = "redis"
            $0.owner = JobSpecOwner.of(values[10].data ?? Data())
        }
    }

    /// The newest 1,000 jobs, oldest first.
    public func list(state: String) async throws -> [Ragd_V1_Job] {
        var jobs: [Ragd_V1_Job] = []
        for id in try await redis.command("ZRANGE", allKey, "-1000", "-1").array.compactMap(\.text) {
            if let j = try await get(id: id), state.isEmpty || j.state == state { jobs.append(j) }
        }
        return jobs
    }
}

extension RedisJobQueue {
    /// Entries not yet delivered to any worker (the group's lag) plus retries in backoff.
    public func waiting(kind: String) async throws -> Int {
        try await ensureGroup(kind)
        var lag = 0
        for g in try await redis.command("XINFO", "GROUPS", stream(kind)).array {
            let kv = g.array
            for i in stride(from: 0, to: kv.count - 1, by: 2) where kv[i].text == "lag" { lag = Int(kv[i + 1].integer ?? 0) }
        }
        return lag + Int(try await redis.command("ZCARD", delayed(kind)).integer ?? 0)
    }
}

extension RedisJobQueue {
    public func expireStaging(idleFor idle: Double) async throws -> [String] {
        // One script per job: it fails the job only if it is still staging and idle,
        // so a part that arrives meanwhile wins.
        let script = """
            local v = redis.call('HMGET', KEYS[1], 'state', 'updated_at', 'created_at')
            if v[1] ~= 'staging' then return 0 end
            local last = tonumber(v[2] or v[3] or '0')
            if last >= tonumber(ARGV[1]) then return 0 end
            redis.call('HSET', KEYS[1], 'state', 'failed', 'finished_at', ARGV[2])
            redis.call('RPUSH', KEYS[1] .. ':errors', ARGV[3])
            redis.call('DEL', KEYS[1] .. ':parts')
            return 1
            """
        let cutoff = Date().timeIntervalSince1970 - idle
        var expired: [String] = []
        for id in try await redis.command("ZRANGE", allKey, "0", "-1").array.compactMap(\.text) {
            let r = try await eval(script, keys: [jobKey(id)], [Data(String(cutoff).utf8), Data(Self.now.utf8), Data(Self.stagingExpiredMessage(idle).utf8)])
            if r.integer == 1 { expired.append(id) }
        }
        return expired
    }

    public func purge(olderThan age: Double) async throws -> Int {
        let cutoff = Date().timeIntervalSince1970 - age
        var removed = 0
        for id in try await redis.command("ZRANGE", allKey, "0", "9999").array.compactMap(\.text) {
            let v = try await redis.command("HMGET", jobKey(id), "state", "finished_at").array
            let state = v.first?.text
            let finished = v.count > 1 ? v[1].text.flatMap(Double.init) ?? 0 : 0
            // Gone already (expired), or finished long enough ago.
            guard state == nil || (["succeeded", "failed", "cancelled"].contains(state!) && finished < cutoff) else { continue }
            let k = jobKey(id)
            _ = try await redis.command("DEL", k, k + ":parts", k + ":errors", k + ":backoffs")
            _ = try await redis.command("ZREM", allKey, id)
            if state != nil { removed += 1 }
        }
        return removed
    }
}

