import Foundation
import RagClient
import RagCore
import RagEngine
@testable import RagServer
import RagTesting
import RagWire
import Testing

/// Hostile clients against real servers: each limit answers with its status
/// code, and a well-behaved client is served meanwhile.
@Suite(.serialized) struct LimitsTests {
    static func decode(_ bytes: [UInt8]?) throws -> Ragd_V1_Frame {
        try Ragd_V1_Frame(serializedBytes: try #require(bytes))
    }

    /// Peak resident memory of a process so far (VmHWM), in bytes.
    static func rss(_ pid: Int32) -> Int {
        let status = readProcFile("/proc/\(pid)/status")
        let line = status.split(whereSeparator: \.isNewline).first { $0.hasPrefix("VmHWM:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
    }

    @Test func connectionsOverTheCapAreRefusedWithAReason() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--max-connections", "4"])
        var held: [RawConnection] = []
        for _ in 0..<4 {
            let c = try RawConnection(port: server.port)
            await c.write(try RawConnection.request(1, "Health"))
            #expect(try Self.decode(await c.nextFrame()).kind == .response)  // admitted and served
            held.append(c)
        }
        let refused = try RawConnection(port: server.port)
        let f = try Self.decode(await refused.nextFrame())
        #expect(f.kind == .error && f.status == .resourceExhausted && f.statusMessage.contains("connections"))
        #expect(await refused.closedByPeer())
        held.removeLast()  // one hog leaves: a well-behaved client gets in
        try await Task.sleep(for: .milliseconds(200))
        let client = server.client()
        #expect(try await client.health().status == "SERVING")
        await client.close()
        await server.stop()
    }

    @Test func slowLorisAndIdleConnectionsAreClosed() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--frame-timeout", "1", "--idle-timeout", "2"])
        let loris = try RawConnection(port: server.port)
        await loris.write([0, 0, 1])  // three bytes of a header, then nothing
        let idle = try RawConnection(port: server.port)
        let client = server.client()
        _ = try await client.index(Fixtures.documents, collection: "kb")
        let f = try Self.decode(await loris.nextFrame())
        #expect(f.kind == .error && f.status == .deadlineExceeded && f.statusMessage.contains("not completed"))
        #expect(await loris.closedByPeer())
        #expect(await idle.closedByPeer())  // no call, no bytes: closed after the idle timeout
        await client.close()  // idle as long, so closed as well: a client connects again for its next call
        let again = server.client()
        #expect(try await again.query("raft leader", collection: "kb").sources.first?.documentID == "raft")
        await again.close()
        await server.stop()
    }

    @Test func callsInFlightPerConnectionAreBounded() async throws {
        let slow = SlowEmbedder(delay: .seconds(30))
        try await withRagServer(configure: { $0.limits.maxCallsPerConnection = 2 }, embedder: slow) { client, server in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            let conn = try RawConnection(port: server.localAddress!.port!)
            var q = Ragd_V1_QueryRequest()
            q.collection = "kb"
            q.query = "slow: pipelined"
            q.noCache = true
            for id in 1...3 { await conn.write(try RawConnection.request(UInt64(id), "Query", try FrameCodec.bytes(q))) }
            let f = try Self.decode(await conn.nextFrame())
            #expect(f.callID == 3 && f.status == .resourceExhausted && f.statusMessage.contains("in flight on this connection"))
            #expect(try await client.health().status == "SERVING")  // another connection is not affected
        }
    }

    @Test func hangingUpCancelsTheWork() async throws {
        let slow = SlowEmbedder(delay: .seconds(30))
        try await withRagServer(embedder: slow) { client, server in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            do {
                let conn = try RawConnection(port: server.localAddress!.port!)
                try await conn.sendQueryWaitingIn(slow, id: 1, "slow: then the client leaves")
            }  // closed here
            for _ in 0..<500 where slow.cancelled.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(slow.cancelled.load(ordering: .relaxed) == 1)
        }
    }

    /// A client that sends Stream requests and never reads: the server stops
    /// reading from it, its memory grows by at most about the budget, and the
    /// client is closed once the grace period passes.
    @Test func aNeverReadingClientCannotGrowTheServer() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: [
            "--max-unsent-bytes", "\(2 * 1024 * 1024)", "--slow-reader-grace", "2", "--cache", "off"])
        let client = server.client()
        let long = String(repeating: "Raft elects a leader by majority vote and replicates its log to followers. ", count: 12)
        _ = try await client.index((0..<200).map { RagDocument(id: "d\($0)", text: long + " number \($0)") }, collection: "kb", timeout: hangGuard)
        let before = Self.rss(server.pid)
        let hog = try RawConnection(port: server.port)
        var q = Ragd_V1_QueryRequest()
        q.collection = "kb"
        q.query = "raft leader majority"
        q.topK = 100
        let request = try RawConnection.request(1, "Stream", try FrameCodec.bytes(q))
        var batch: [UInt8] = []
        for id in 1...2000 {
            var r = request
            r = try RawConnection.request(UInt64(id), "Stream", try FrameCodec.bytes(q))
            batch += r
            if id % 100 == 0 { await hog.write(batch); batch = [] }  // ~100 KB per answer, 200 MB if all were buffered
        }
        // The hog is closed once its answers have sat unread for the grace period.
        // (Calls wait up to `hangGuard`: on a loaded two-core CI machine a debug
        // server answering the hog's calls admitted before it stopped reading
        // may take longer than the default deadline; this test is about memory.)
        var open = try await client.stats(timeout: hangGuard).openConnections
        for _ in 0..<600 where open > 1 {
            try await Task.sleep(for: .milliseconds(50))
            open = try await client.stats(timeout: hangGuard).openConnections
        }
        #expect(open == 1)  // only this client is left
        let grown = Self.rss(server.pid) - before
        #expect(grown < 96 * 1024 * 1024, "the server's peak memory grew by \(grown / 1024 / 1024) MiB for a client that never reads")
        #expect(try await client.query("raft", collection: "kb", mode: .keyword, timeout: hangGuard).sources.count > 0)
        await client.close()
        await server.stop()
    }

    @Test func incompleteFramesShareABudget() async throws {
        try await withRagServer(configure: { $0.limits.maxBufferedFrameBytes = 1024 * 1024 }) { client, server in
            let port = server.localAddress!.port!
            let a = try RawConnection(port: port), b = try RawConnection(port: port)
            let header: (Int) -> [UInt8] = { n in [UInt8(n >> 24 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] }
            await a.write(header(900_000) + [UInt8](repeating: 1, count: 700_000))
            // B writes once the server holds A's bytes (not after a fixed sleep: under load it may not yet).
            #expect(await eventually(seconds: 60) { server.bufferedFrameBytes >= 700_000 })
            await b.write(header(900_000) + [UInt8](repeating: 1, count: 400_000))
            let f = try Self.decode(await b.nextFrame())
            #expect(f.status == .resourceExhausted && f.statusMessage.contains("incomplete"))
            #expect(try await client.health().status == "SERVING")
            // A's frame is still taken in full (and found to be garbage): the budget was B's to lose.
            await a.write([UInt8](repeating: 1, count: 200_000))
            #expect(try Self.decode(await a.nextFrame()).status == .invalidArgument)
        }
    }

    @Test func requestSizesAreCheckedBeforeAnyWork() async throws {
        try await withRagServer(configure: { $0.requests.maxDocumentBytes = 64 * 1024; $0.maxDocumentsPerCall = 100 }) { client, _ in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            func code(_ body: () async throws -> Void) async -> RagError.Code? {
                do { try await body(); return nil } catch { return RagError(from: error).code }
            }
            // Filters: an `in` list of 200k values, and too many nodes.
            let many = MetadataFilter.compare(key: "topic", op: .in, values: (0..<200_000).map { .number(Double($0)) })
            #expect(await code { _ = try await client.query("x", collection: "kb", filter: many) } == .invalidArgument)
            let deep = MetadataFilter.or((0..<300).map { .compare(key: "year", op: .eq, values: [.number(Double($0))]) })
            #expect(await code { _ = try await client.query("x", collection: "kb", filter: deep) } == .invalidArgument)
            // Documents: too long, too much metadata.
            let big = RagDocument(id: "big", text: String(repeating: "a", count: 70 * 1024))
            #expect(await code { _ = try await client.index([big], collection: "kb") } == .invalidArgument)
            var meta: Metadata = [:]
            for i in 0..<100 { meta["k\(i)"] = .string("v") }
            #expect(await code { _ = try await client.index([RagDocument(id: "m", text: "text", metadata: meta)], collection: "kb") } == .invalidArgument)
            // The same count limit on Index, IndexStream and a job part.
            let docs = (0..<101).map { RagDocument(id: "n\($0)", text: "document \($0)") }
            #expect(await code { _ = try await client.index(docs, collection: "kb") } == .resourceExhausted)
            #expect(await code { for try await _ in try await client.indexStream(docs, collection: "kb") {} } == .resourceExhausted)
            #expect(await code { _ = try await client.submit(indexSpec(docs)) } == .resourceExhausted)
            #expect(await code { _ = try await client.submit(indexSpec([big])) } == .invalidArgument)
            #expect(try await client.stats(collection: "kb").collections.first?.documents == UInt64(Fixtures.documents.count))
        }
    }

    @Test func oneGiantGraphemeClusterIsNotOneGiantChunk() throws {
        let chunker = try Chunker(size: 100, overlap: 10)
        let zalgo = "e" + String(repeating: "\u{301}", count: 100_000)
        let chunks = chunker.chunks(zalgo)
        #expect(chunks.count > 1)
        #expect(chunks.allSatisfy { $0.unicodeScalars.count <= 100 * Chunker.maxScalarsPerCharacter })
        #expect(chunks.map { $0.unicodeScalars.count }.reduce(0, +) >= 100_001)
    }

    @Test func anAnswerLargerThanAFrameIsRefused() async throws {
        try await withRagServer(configure: { $0.maxFrameSize = 64 * 1024 }) { client, _ in
            let text = String(repeating: "Leader election in Raft needs a majority of votes. ", count: 60)
            for batch in 0..<8 {
                _ = try await client.index((0..<5).map { RagDocument(id: "r\(batch)-\($0)", text: text) }, collection: "kb", chunkSize: 4000, chunkOverlap: 0)
            }
            do {
                _ = try await client.query("leader election", collection: "kb", topK: 40, mode: .keyword)
                Issue.record("an answer larger than a frame was sent")
            } catch {
                #expect(RagError(from: error).code == .resourceExhausted && RagError(from: error).message.contains("top_k"))
            }
            #expect(try await client.query("leader election", collection: "kb", topK: 3, mode: .keyword).sources.count == 3)
        }
    }

    /// Internal errors reach the client as a code and a request id; paths stay in the log.
    @Test func internalErrorsCarryNoServerPaths() async throws {
        let dispatcher = Dispatcher(handlers: [
            "Boom": .unary { _, _ in throw RagError(.internal, "cannot open /var/lib/ragd/collections/kb/p000.sqlite: disk I/O error") },
            "Missing": .unary { _, _ in throw RagError(.notFound, "no such file /srv/data/collections/kb") },
        ], logger: .init(label: "test"), dataDirectory: "/srv/data")
        final class Box: @unchecked Sendable { var frames: [Ragd_V1_Frame] = [] }
        let box = Box()
        for m in ["Boom", "Missing"] {
            var f = Ragd_V1_Frame()
            f.callID = 1
            f.method = m
            f.kind = .request
            f.metadata.requestID = "req-1"
            await dispatcher.handle(f, receivedAt: .now) { box.frames.append($0) }
        }
        #expect(box.frames[0].status == .internal && !box.frames[0].statusMessage.contains("/") && box.frames[0].statusMessage.contains("req-1"))
        #expect(box.frames[1].status == .notFound && !box.frames[1].statusMessage.contains("/srv/data"))
    }

    /// A shard checks every write against what it stores: never a crash, never a stray file.
    @Test func shardWritesThatDoNotFitAreRefused() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let shard = try await RagdProcess.launch(dataDirectory: dir, extraArguments: LocalCluster.shardArguments())
        let client = shard.internalClient()
        func write(partition: UInt32, dimension: Int, embedder: String = "hashing-384", partitions: UInt32 = 4) async throws {
            var r = Ragd_V1_ShardWriteRequest()
            r.shard.collection = "kb"
            r.shard.partition = partition
            r.shard.dimension = UInt32(dimension)
            r.shard.embedder = embedder
            r.shard.partitions = partitions
            r.upserts = [PreparedDocument(id: "d", metadata: [:], contentHash: 1, chunks: ["text"], embeddings: [[Float](repeating: 0.1, count: dimension)]).wire]
            _ = try await client.call(.shardWrite, r, as: Ragd_V1_ShardWriteResponse.self, timeout: hangGuard)
        }
        try await write(partition: 0, dimension: 8)
        let refused: [(UInt32, Int, String, UInt32, RagError.Code)] = [
            (0, 16, "hashing-384", 4, .failedPrecondition), (1, 16, "hashing-384", 4, .failedPrecondition),  // another dimension
            (4_000_000_000, 8, "hashing-384", 4, .invalidArgument),                                          // absurd partition
            (4, 8, "hashing-384", 4, .invalidArgument),                                                      // outside the placement
            (1, 8, "minilm-l6-v2", 4, .failedPrecondition),                                                  // another embedder
            (1, 8, "hashing-384", 8, .failedPrecondition),                                                   // another partition count
        ]
        for (partition, dimension, embedder, partitions, expected) in refused {
            do {
                try await write(partition: partition, dimension: dimension, embedder: embedder, partitions: partitions)
                Issue.record("shard accepted partition \(partition), dimension \(dimension), \(embedder), \(partitions) partitions")
            } catch {
                #expect(RagError(from: error).code == expected, "\(error)")
            }
        }
        // ShardTexts: the text of the version asked for only, and a bounded request.
        func texts(_ hashes: [UInt64]) async throws -> [String] {
            var r = Ragd_V1_ShardTextsRequest()
            r.shard.collection = "kb"
            r.chunks = hashes.map { h in Ragd_V1_ChunkText.with { $0.documentID = "d"; $0.contentHash = h } }
            return try await client.call(.shardTexts, r, as: Ragd_V1_ShardTextsResponse.self, timeout: hangGuard).chunks.map(\.text)
        }
        #expect(try await texts([1]) == ["text"])
        #expect(try await texts([2]).isEmpty, "another version's text is not given")
        do {
            _ = try await texts(Array(repeating: 1, count: 10_001))
            Issue.record("a ShardTexts call for 10,001 chunks was answered")
        } catch {
            #expect(RagError(from: error).code == .invalidArgument, "\(error)")
        }
        #expect(shard.isRunning)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/collections/kb").filter { $0.hasSuffix(".sqlite") }
        #expect(files == ["p000.sqlite"])
        await client.close()
        await shard.stop()
        let again = try await RagdProcess.launch(dataDirectory: dir, extraArguments: LocalCluster.shardArguments())  // still starts
        await again.stop()
    }

    /// Under `ulimit -n 256` a flood of connections and collections is refused, and the server lives on.
    @Test func aDescriptorStarvedServerRefusesAndKeepsRunning() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = try ChildProcess("/bin/bash", ["-c", "ulimit -n 256 && exec \"$0\" serve --port 0 --data-dir \"$1\" --metrics-port off --log-level warning",
                                               RagdProcess.binary, dir], stdout: .pipe)
        defer { if p.isRunning { p.signal(SIGKILL); p.waitUntilExit() } }
        let line = try await onThread { String(decoding: p.output!.availableData, as: UTF8.self) }
        let port = try #require(Int(line.split(separator: ":").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
        // The flood comes from another process: 400 sockets held in this one would
        // crowd the test process itself (Foundation's Process.run mishandles a
        // process with many descriptors open, and other tests spawn processes).
        let flood = """
            import socket, sys, time
            held = []
            for _ in range(400):
                try:
                    held.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
                except OSError:
                    pass
            time.sleep(0.5)
            print(len(held))
            """
        let opened = try await run(["python3", "-c", flood, "\(port)"])
        #expect(opened.status == 0, "\(opened.errors)")
        try await Task.sleep(for: .milliseconds(300))
        let client = RagClient(host: "127.0.0.1", port: port, defaultTimeout: .seconds(20))
        var refused = 0
        for i in 0..<40 {
            do { _ = try await client.index([RagDocument(id: "d", text: "text")], collection: "c\(i)") } catch {
                #expect(RagError(from: error).code == .resourceExhausted, "\(error)")
                refused += 1
            }
        }
        #expect(refused > 0)
        #expect(p.isRunning)
        #expect(try await client.health().status == "SERVING")
        await client.close()
    }
}
