import Foundation
import RagClient
import RagCore
import RagTesting
import RagWire
import Testing

@Suite(.serialized) struct GoldenFrameTests {
    func golden(_ name: String) throws -> [UInt8] {
        let hex = try String(contentsOfFile: Repo.path("Tests/Conformance/golden/\(name).hex"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            out.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    func encoded(_ f: Ragd_V1_Frame) throws -> [UInt8] { Array(try FrameCodec.encode(f).readableBytesView) }

    func frame(_ id: UInt64, _ method: String, _ kind: Ragd_V1_FrameKind, payload: Data = Data()) -> Ragd_V1_Frame {
        var f = Ragd_V1_Frame()
        f.callID = id
        f.method = method
        f.kind = kind
        f.payload = payload
        return f
    }

    @Test func swiftEncodesAndDecodesTheGoldenFrames() throws {
        var q = Ragd_V1_QueryRequest()
        q.collection = "kb"
        q.query = "what is SQLITE_BUSY?"
        q.topK = 3
        q.mode = .keyword
        q.filter = MetadataFilter.and([.compare(key: "lang", op: .eq, values: [.string("en")]),
                                       .compare(key: "year", op: .gte, values: [.number(2000)])]).wire
        var query = frame(42, "Query", .request, payload: try q.serializedData())
        query.metadata.requestID = "req-1"
        query.metadata.deadlineMs = 1500
        var zero = Ragd_V1_QueryRequest()
        zero.collection = "kb"
        zero.query = "x"
        zero.topK = 0
        var error = frame(42, "Query", .error)
        error.status = .notFound
        error.statusMessage = "collection \"kb\" does not exist"
        var token = Ragd_V1_StreamEvent()
        token.token = "Hello "
        let cases: [(String, Ragd_V1_Frame)] = [
            ("health-request", frame(1, "Health", .request)),
            ("query-request", query),
            ("query-top-k-zero", frame(2, "Query", .request, payload: try zero.serializedData())),
            ("error-not-found", error),
            ("stream-token", frame(7, "Stream", .streamMessage, payload: try token.serializedData())),
            ("end-of-stream", frame(7, "Stream", .endOfStream)),
            ("cancel", frame(9, "", .cancel)),
        ]
        for (name, f) in cases {
            let bytes = try golden(name)
            #expect(try encoded(f) == bytes, "\(name)")
            let decoded = try FrameCodec.decode(.init(bytes: bytes.dropFirst(4)))
            #expect(decoded == f, "\(name)")
        }
        let decodedZero = try Ragd_V1_QueryRequest(serializedBytes: try FrameCodec.decode(.init(bytes: try golden("query-top-k-zero").dropFirst(4))).payload)
        #expect(decodedZero.topKValue != nil && decodedZero.topK == 0)
    }

    @Test func pythonAndCAgreeWithTheGoldenFrames() async throws {
        let py = try await run(["python3", Repo.path("Tests/Conformance/golden.py"), "check"])
        #expect(py.status == 0, "\(py.output) \(py.errors)")
        #expect(py.output.contains("0 failed"))
        let make = try await CClientBuild.shared.make()
        #expect(make.status == 0, "\(make.errors)")
        let c = try await run([Repo.path("Clients/c/ragd-c-golden"), Repo.path("Tests/Conformance/golden")])
        #expect(c.status == 0, "\(c.output)")
        #expect(c.output.contains("0 failed"))
    }

    /// A misbehaving server must not crash the C client or make it leak.
    @Test func cClientSurvivesBadServerBytes() async throws {
        let make = try await CClientBuild.shared.make()
        #expect(make.status == 0, "\(make.errors)")
        let valgrind = FileManager.default.isExecutableFile(atPath: "/usr/bin/valgrind")
        let cases: [(String, [UInt8], String)] = [
            ("truncated", [0, 0, 0, 100, 1, 2, 3], "UNAVAILABLE"),
            ("oversize", [0xFF, 0xFF, 0xFF, 0xFF, 0, 0], "INTERNAL"),
            ("garbage", [0, 0, 0, 5, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], "INTERNAL"),
            ("hang-up", [], "UNAVAILABLE"),
        ]
        for (name, bytes, expected) in cases {
            let fake = try FakeServer(bytes.isEmpty ? .hangUp : .reply(bytes))
            defer { fake.stop() }
            let query = [Repo.path("Clients/c/ragd-c-query"), "127.0.0.1", "\(fake.port)", "kb", "question"]
            let args = valgrind ? ["valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99"] + query : query
            let r = try await run(args)
            #expect(r.status == 1, "\(name): exit \(r.status) \(r.errors)")
            #expect(r.errors.contains(expected), "\(name): \(r.errors)")
        }
    }
}
