@testable import RagClient
import Foundation
import RagCore
import RagEngine
@testable import RagServer
import RagTesting
import RagWire
import Testing

extension RawConnection {
    /// Sends a Query on collection "kb" whose embedding waits in `slow`, and
    /// returns once it does (the call is then surely running on the server).
    func sendQueryWaitingIn(_ slow: SlowEmbedder, id: UInt64, _ text: String) async throws {
        var q = Ragd_V1_QueryRequest()
        q.collection = "kb"
        q.query = text
        await write(try RawConnection.request(id, "Query", try FrameCodec.bytes(q)))
        for _ in 0..<500 where slow.started.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(10)) }
    }
}

@Suite struct ProtocolPromiseTests {
    /// #19.4: a CANCEL of a running call is answered with ERROR CANCELLED for that
    /// call; a CANCEL of an id the server does not know gets no answer at all.
    @Test func cancelIsAnsweredOnlyForARunningCall() async throws {
        let slow = SlowEmbedder(delay: .seconds(30))
        try await withRagServer(embedder: slow) { client, server in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            let conn = try RawConnection(port: server.localAddress!.port!)
            try await conn.sendQueryWaitingIn(slow, id: 7, "slow: a query that waits in the embedder")
            await conn.write(Array(try FrameCodec.encode(.with { $0.callID = 7; $0.kind = .cancel }).readableBytesView))
            let cancelled = try Ragd_V1_Frame(serializedBytes: try #require(await conn.nextFrame()))
            #expect(cancelled.callID == 7 && cancelled.kind == .error && cancelled.status == .cancelled)
            // An unknown id: silence. The next frame on the connection is Health's answer.
            await conn.write(Array(try FrameCodec.encode(.with { $0.callID = 999; $0.kind = .cancel }).readableBytesView))
            await conn.write(try RawConnection.request(8, "Health"))
            let next = try Ragd_V1_Frame(serializedBytes: try #require(await conn.nextFrame()))
            #expect(next.callID == 8 && next.kind == .response)
        }
    }

    /// #19.5: an ERROR with call id 0 fails the calls of the connection it came
    /// on, not those of another connection of the same client.
    @Test func aConnectionErrorFailsOnlyThatConnectionsCalls() async throws {
        let table = CallTable()
        final class Box: @unchecked Sendable { var a: Result<Data, any Error>?; var b: Result<Data, any Error>? }
        let box = Box()
        let connA = ObjectIdentifier(Box.self), connB = ObjectIdentifier(CallTable.self)
        func wait(_ id: UInt64, on connection: ObjectIdentifier) async -> Result<Data, any Error> {
            do { return .success(try await withCheckedThrowingContinuation { table.add(id, .unary($0), connection: connection) }) } catch { return .failure(error) }
        }
        async let a: Void = { box.a = await wait(1, on: connA) }()
        async let b: Void = { box.b = await wait(2, on: connB) }()
        while !(table.contains(1) && table.contains(2)) { try await Task.sleep(for: .milliseconds(5)) }
        table.deliver(.error(callID: 0, RagError(.resourceExhausted, "frame too large")), from: connA)
        #expect(table.contains(2) && !table.contains(1))
        var reply = Ragd_V1_Frame()
        reply.callID = 2
        reply.kind = .response
        reply.payload = Data([42])
        table.deliver(reply, from: connB)
        _ = await (a, b)
        if case .failure(let e)? = box.a { #expect(RagError(from: e).code == .resourceExhausted) } else { Issue.record("call 1 did not fail") }
        if case .success(let d)? = box.b { #expect(d == Data([42])) } else { Issue.record("call 2 was failed by the other connection's error") }
    }

    /// #19.9: an error echoes at most a bounded part of what the request held.
    @Test func errorsDoNotEchoHugeMethodNames() async throws {
        try await withRagServer { _, server in
            let conn = try RawConnection(port: server.localAddress!.port!)
            let huge = String(repeating: "M", count: 1_000_000)
            await conn.write(try RawConnection.request(3, huge))
            let bytes = try #require(await conn.nextFrame())
            #expect(bytes.count < 8 * 1024, "an error frame of \(bytes.count) bytes")
            let f = try Ragd_V1_Frame(serializedBytes: bytes)
            #expect(f.callID == 3 && f.status == .unimplemented && f.method.isEmpty)
            #expect(f.statusMessage.hasPrefix("method \"MMMM"))
            await conn.write(try RawConnection.request(4, "Health"))
            #expect(try Ragd_V1_Frame(serializedBytes: try #require(await conn.nextFrame())).kind == .response)
        }
    }

    /// The fuzz harness (Scripts/fuzz.sh) replays its seed corpus cleanly in a
    /// normal build: the seeds stay valid and the harness itself does not rot.
    @Test func fuzzSeedsReplayCleanly() async throws {
        let replayer = URL(fileURLWithPath: RagdProcess.binary).deletingLastPathComponent().appendingPathComponent("RagFuzz").path
        let seeds = Repo.path("Tests/Fuzz/seeds")
        let count = try FileManager.default.contentsOfDirectory(atPath: seeds).count
        let r = try await run([replayer, seeds])
        #expect(r.status == 0 && r.output.contains("replayed \(count) inputs"), "\(r.output) \(r.errors)")
    }

    @Test func truncationKeepsWholeCharacters() {
        #expect("hello".truncatedUTF8(maxBytes: 10) == "hello")
        let cut = String(repeating: "é", count: 100).truncatedUTF8(maxBytes: 11)
        #expect(cut.utf8.count <= 11 && cut.hasSuffix("…") && cut.dropLast().allSatisfy { $0 == "é" })
    }

    /// #19.10: TopK (on swift-collections' Heap) agrees with a full sort, ties by key.
    @Test func topKMatchesAFullSort() {
        var rng = SystemRandomNumberGenerator()
        for k in [1, 3, 10, 50] {
            var top = TopK<Int>(k: k)
            var all: [(Double, Int)] = []
            for key in 0..<500 {
                let score = Double(Int.random(in: 0..<40, using: &rng)) / 4  // many ties
                top.insert(score: score, key: key)
                all.append((score, key))
            }
            let expected = all.sorted { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }.prefix(k).map(\.1)
            #expect(top.sorted().map(\.key) == Array(expected))
        }
    }
}

@Suite(.serialized) struct RedisConnectionTests {
    /// #19.8: commands run on several connections at once: four BLPOPs block
    /// together (one connection behind a lock would hold three of them back).
    @Test func commandsRunInParallelOnAPool() async throws {
        let redis = try await RedisProcess.launch()
        defer { redis.stop() }
        let conn = RedisConnection(host: "127.0.0.1", port: redis.port, timeout: hangGuard, connections: 4)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<4 { group.addTask { _ = try await conn.command("BLPOP", "list\(i)", "10") } }
            var blocked = 0
            for _ in 0..<500 {
                let info = try redis.cli("INFO", "clients")
                blocked = Int(info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("blocked_clients:") }?.split(separator: ":").last?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? "0") ?? 0
                if blocked == 4 { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(blocked == 4)
            for i in 0..<4 { _ = try redis.cli("LPUSH", "list\(i)", "x") }
            try await group.waitForAll()
        }
    }

    /// #19.8: a query served from L1 costs one Redis round trip (one MGET for the generation), no GET.
    @Test func anL1HitCostsOneRoundTrip() async throws {
        let redis = try await RedisProcess.launch()
        defer { redis.stop() }
        try await withRagServer(configure: QueryCacheTests.sharing(redis)) { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            _ = try await client.query("worker processes of nginx", collection: "kb")
            func calls(_ command: String) throws -> Int {
                let stats = try redis.cli("INFO", "commandstats")
                guard let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_\(command):") }) else { return 0 }
                return Int(line.split(separator: "=")[1].split(separator: ",")[0]) ?? 0
            }
            let (mget, get) = (try calls("mget"), try calls("get"))
            for _ in 0..<20 { #expect(try await client.query("worker processes of nginx", collection: "kb").cacheLevel == "l1") }
            #expect(try calls("mget") - mget == 20)
            #expect(try calls("get") - get == 0)
        }
    }

    /// #19.11: the error after Redis dies is hiredis's message, copied while it was valid.
    @Test func aDeadRedisGivesAReadableError() async throws {
        let redis = try await RedisProcess.launch()
        let conn = RedisConnection(host: "127.0.0.1", port: redis.port, timeout: .seconds(2), connections: 1)
        #expect(try await conn.command("PING") == .status("PONG"))
        redis.stop()
        do {
            _ = try await conn.command("PING")
            Issue.record("PING to a stopped Redis succeeded")
        } catch {
            let message = RagError(from: error).message
            #expect(message.hasPrefix("redis error: ") || message.hasPrefix("cannot connect"))
            #expect(message.unicodeScalars.allSatisfy { $0.isASCII && ($0.value >= 0x20) }, "\(message.debugDescription)")
            #expect(!message.contains("\u{FFFD}"))
        }
    }
}
