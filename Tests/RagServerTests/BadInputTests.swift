import Foundation
import RagClient
import RagCore
import RagEngine
import RagTesting
import RagWire
import Synchronization
import Testing

/// An embedder that takes its time and records whether it was cancelled, to
/// observe deadlines and cancellation from the server side.
final class SlowEmbedder: Embedder {
    let inner = HashingEmbedder()
    let delay: Duration
    let cancelled = Atomic<Int>(0)
    let started = Atomic<Int>(0)
    let slowQueries: Bool
    var id: String { inner.id }
    var dimension: Int { inner.dimension }

    init(delay: Duration, slowQueries: Bool = true) {
        self.delay = delay
        self.slowQueries = slowQueries
    }

    func embed(_ texts: [String]) async throws -> [[Float]] {
        if slowQueries, texts.count == 1, texts[0].hasPrefix("slow") {
            started.add(1, ordering: .relaxed)
            do { try await Task.sleep(for: delay) } catch {
                cancelled.add(1, ordering: .relaxed)
                throw error
            }
        }
        return try await inner.embed(texts)
    }
}

@Suite struct BadInputTests {
    func expectCode(_ code: RagError.Code, _ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            try await body()
            Issue.record("expected \(code), got success", sourceLocation: sourceLocation)
        } catch let e as RagError {
            #expect(e.code == code, "\(e)", sourceLocation: sourceLocation)
            #expect(!e.message.isEmpty, sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected RagError, got \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func badRequestsGetTheirStatusCodesAndTheServerKeepsServing() async throws {
        try await withRagServer { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            await expectCode(.invalidArgument) { _ = try await client.query("   ", collection: "kb") }
            await expectCode(.invalidArgument) { _ = try await client.query("sqlite", collection: "kb", topK: 0) }
            await expectCode(.invalidArgument) { _ = try await client.query("sqlite", collection: "kb", topK: 100_000) }
            await expectCode(.notFound) { _ = try await client.query("sqlite", collection: "nope") }
            await expectCode(.invalidArgument) { _ = try await client.query("sqlite", collection: "../etc") }
            await expectCode(.invalidArgument) {
                _ = try await client.query("sqlite", collection: "kb", filter: .compare(key: "year", op: .lt, values: [.bool(true)]))
            }
            await expectCode(.invalidArgument) { _ = try await client.query("sqlite", collection: "kb", filter: .and([])) }
            await expectCode(.invalidArgument) { _ = try await client.index([], collection: "kb") }
            await expectCode(.invalidArgument) { _ = try await client.index([RagDocument(id: "", text: "x")], collection: "kb") }
            await expectCode(.invalidArgument) { _ = try await client.index([RagDocument(id: "e", text: " \n ")], collection: "kb") }
            await expectCode(.invalidArgument) {
                _ = try await client.index([RagDocument(id: "d", text: "a"), RagDocument(id: "d", text: "b")], collection: "kb")
            }
            await expectCode(.invalidArgument) { _ = try await client.index([RagDocument(id: "x", text: "abc")], collection: "kb", chunkSize: 100, chunkOverlap: 90) }
            await expectCode(.notFound) { _ = try await client.delete(["x"], collection: "nope") }
            // Nothing stored was lost and the server still answers.
            let r = try await client.query("SQLITE_BUSY", collection: "kb", topK: 1)
            #expect(r.sources.first?.documentID == "sqlite")
            let stats = try await client.stats(collection: "kb")
            #expect(stats.collections.first?.documents == UInt64(Fixtures.documents.count))
        }
    }

    @Test func rawProtocolAbuse() async throws {
        try await withRagServer(configure: { $0.maxFrameSize = 64 * 1024 }) { client, server in
            let port = server.localAddress!.port!
            // Random bytes in a well-formed frame: INVALID_ARGUMENT, connection stays usable.
            let conn = try RawConnection(port: port)
            await conn.write([0, 0, 0, 5, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
            let err = try #require(await conn.nextFrame())
            let f = try Ragd_V1_Frame(serializedBytes: err)
            #expect(f.kind == .error)
            #expect(f.status == .invalidArgument)
            func call(_ id: UInt64, _ method: String, payload: Data = Data()) async throws -> Ragd_V1_Frame {
                await conn.write(Array(try FrameCodec.encode(.with { $0.callID = id; $0.kind = .request; $0.method = method; $0.payload = payload }).readableBytesView))
                return try Ragd_V1_Frame(serializedBytes: try #require(await conn.nextFrame()))
            }
            // An unknown method: UNIMPLEMENTED, connection still usable.
            let u = try await call(9, "Frobnicate")
            #expect(u.callID == 9 && u.status == .unimplemented)
            // A request whose payload is not the method's message: INVALID_ARGUMENT.
            let b = try await call(10, "Query", payload: Data([0xFF, 0xFF, 0xFF]))
            #expect(b.callID == 10 && b.status == .invalidArgument)
            let h = try await call(11, "Health")
            #expect(h.callID == 11 && h.kind == .response)
            #expect(try Ragd_V1_HealthResponse(serializedBytes: h.payload).status == "SERVING")

            // An oversize length prefix: RESOURCE_EXHAUSTED, then the server closes
            // without waiting for (or reading) the body.
            let big = try RawConnection(port: port)
            await big.write([0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3])
            let o = try Ragd_V1_Frame(serializedBytes: try #require(await big.nextFrame()))
            #expect(o.status == .resourceExhausted)
            #expect(o.statusMessage.contains("exceeds"))
            #expect(await big.closedByPeer())

            // The server is fine for everyone else.
            let status = try await client.health().status
            #expect(status == "SERVING")
        }
    }

    @Test func oversizeIndexFromTheClientIsResourceExhausted() async throws {
        try await withRagServer(configure: { $0.maxFrameSize = 64 * 1024 }) { client, _ in
            let huge = RagDocument(id: "huge", text: String(repeating: "word ", count: 30_000))
            await expectCode(.resourceExhausted) { _ = try await client.index([huge], collection: "kb") }
            // The client reconnects and carries on.
            let health = try await client.health()
            #expect(health.status == "SERVING")
        }
    }

    @Test func deadlineExceededStopsTheWork() async throws {
        let slow = SlowEmbedder(delay: .seconds(20))
        try await withRagServer(embedder: slow) { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            await expectCode(.deadlineExceeded) { _ = try await client.query("slow question", collection: "kb", timeout: .milliseconds(200)) }
            // The server cancelled the embedder call rather than letting it run on
            // (on a loaded machine the deadline may pass before the call even starts).
            for _ in 0..<500 where slow.cancelled.load(ordering: .relaxed) < slow.started.load(ordering: .relaxed) {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(slow.started.load(ordering: .relaxed) <= 1)
            #expect(slow.cancelled.load(ordering: .relaxed) == slow.started.load(ordering: .relaxed))
            // The server still answers (a generous deadline: the whole suite starts
            // dozens of servers at once on two cores, and this asserts no timing).
            let fast = try await client.query("fast question", collection: "kb", timeout: .seconds(30))
            #expect(fast.sources.count > 0)
        }
    }

    @Test func clientCancellationReachesTheServer() async throws {
        let slow = SlowEmbedder(delay: .seconds(20))
        try await withRagServer(embedder: slow) { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            let task = Task { try await client.query("slow question", collection: "kb") }
            // Cancel once the call is in the embedder (a fixed sleep raced a loaded machine).
            for _ in 0..<1000 where slow.started.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(10)) }
            task.cancel()
            await expectCode(.cancelled) { _ = try await task.value }
            for _ in 0..<500 where slow.cancelled.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(20)) }
            #expect(slow.cancelled.load(ordering: .relaxed) == 1)
        }
    }
}

@Suite struct EmbedderMismatchTests {
    @Test func aCollectionRemembersItsEmbedder() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await withRagServer(configure: { $0.dataDirectory = dir }) { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
        }
        try await withRagServer(configure: { $0.dataDirectory = dir }, embedder: HashingEmbedder(dimension: 128)) { client, _ in
            for call in [{ _ = try await client.query("sqlite", collection: "kb") },
                         { _ = try await client.index([RagDocument(id: "x", text: "y")], collection: "kb") }] as [@Sendable () async throws -> Void] {
                do {
                    try await call()
                    Issue.record("expected FAILED_PRECONDITION")
                } catch let e as RagError {
                    #expect(e.code == .failedPrecondition)
                    #expect(e.message.contains("re-index"))
                }
            }
        }
    }
}
