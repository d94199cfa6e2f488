import Foundation
import RagClient
import RagCore
import RagTesting
import Testing

/// Distributed tracing: a query through a coordinator and two shard nodes, all
/// exporting to an OTLP/HTTP receiver (Tests/Fixtures/otlp_receiver.py, which
/// decodes the protobuf itself), makes one trace whose spans link up.
@Suite struct TracingTests {
    struct ExportedSpan: Decodable {
        var service: String?
        var trace_id: String
        var span_id: String
        var parent_span_id: String?
        var name: String
        var kind: Int?
        var attributes: [String: AttributeValue]
    }

    enum AttributeValue: Decodable, Hashable {
        case string(String), number(Double), bool(Bool), null
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .string(s) }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let n = try? c.decode(Double.self) { self = .number(n) }
            else { self = .null }
        }
    }

    static func receiver(writingTo file: String) async throws -> (ChildProcess, Int) {
        try await onThread {
            let p = try ChildProcess("/usr/bin/env", ["python3", Repo.path("Tests/Fixtures/otlp_receiver.py"), file], stdout: .pipe)
            let line = String(decoding: p.output!.availableData, as: UTF8.self)
            guard let port = line.split(separator: " ").last.flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) else {
                p.signal(SIGKILL)
                throw RagError(.internal, "the OTLP receiver did not start: \(line)")
            }
            return (p, port)
        }
    }

    static func spans(in file: String, trace: String) -> [ExportedSpan] {
        let text = String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self)
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(ExportedSpan.self, from: Data($0.utf8)) }.filter { $0.trace_id == trace }
    }

    @Test func aQueryThroughACoordinatorAndTwoShardsIsOneTrace() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/spans.jsonl"
        let (receiver, port) = try await Self.receiver(writingTo: file)
        defer { receiver.signal(SIGKILL); _ = receiver.waitUntilExit() }
        let endpoint = "http://127.0.0.1:\(port)"
        let cluster = try await LocalCluster.launch(shards: 2, replicas: 1,
                                                    coordinatorArguments: ["--otel-endpoint", endpoint, "--otel-service-name", "coordinator"],
                                                    shardArguments: ["--otel-endpoint", endpoint])
        defer { cluster.stop() }
        let c = cluster.client()
        _ = try await c.index(Fixtures.documents, collection: "kb", timeout: hangGuard)

        // The caller's own span: the trace id and parent the server must continue.
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736", parent = "00f067aa0ba902b7"
        let r = try await RagClient.$traceparent.withValue("00-\(trace)-\(parent)-01") {
            try await c.query("how is a leader elected in Raft", collection: "kb", topK: 3, timeout: hangGuard)
        }
        #expect(r.sources.first?.documentID == "raft")
        // Each process exports in batches of its own: wait for the shard calls and
        // for the coordinator's Query span, which ends last (its batch can come later).
        #expect(await eventually(seconds: 30) {
            let spans = Self.spans(in: file, trace: trace)
            return spans.filter { $0.name == "ShardSearch" }.count >= 4 && spans.contains { $0.name == "Query" && $0.service == "coordinator" }
        })
        let spans = Self.spans(in: file, trace: trace)
        let byID = Dictionary(spans.map { ($0.span_id, $0) }, uniquingKeysWith: { a, _ in a })
        print(spans.map { "\($0.service ?? "?") \($0.name) \($0.span_id) <- \($0.parent_span_id ?? "-")" }.joined(separator: "\n"))
        // The coordinator's server span continues the caller's.
        let query = try #require(spans.first { $0.name == "Query" && $0.service == "coordinator" })
        #expect(query.parent_span_id == parent)
        for name in ["embed", "keyword statistics", "fuse", "generate", "cache l1"] {
            #expect(spans.contains { $0.name == name && $0.parent_span_id == query.span_id }, "\(name) under Query")
        }
        // One search span per partition, each with a client span to its shard node…
        let searches = spans.filter { $0.name.hasPrefix("search partition") }
        #expect(searches.count == 2 && searches.allSatisfy { $0.parent_span_id == query.span_id && $0.attributes["ragd.partition"] != nil })
        let calls = spans.filter { $0.name == "ShardSearch" && $0.service == "coordinator" }
        #expect(calls.count == 2 && calls.allSatisfy { call in searches.contains { $0.span_id == call.parent_span_id } })
        #expect(Set(calls.compactMap { $0.attributes["ragd.replica"] }).count == 2, "each partition's call names its replica")
        // …continued by a server span on that node.
        let served = spans.filter { $0.name == "ShardSearch" && $0.service == "ragd-shard" }
        #expect(served.count == 2 && served.allSatisfy { s in calls.contains { $0.span_id == s.parent_span_id } })
        // Every span's parent is in the trace (or is the caller's span).
        for s in spans { #expect(s.parent_span_id == parent || s.parent_span_id.map { byID[$0] != nil } == true, "\(s.name) has no parent in the trace") }

        // The Python and C clients pass a traceparent too.
        let make = try await CClientBuild.shared.make()
        #expect(make.status == 0, "make: \(make.errors)")
        let callers: [(String, String, [String], [String: String])] = [
            ("python", "11111111111111111111111111111111", ["python3", "-c", """
                import sys; sys.path.insert(0, sys.argv[1])
                import ragd_client as rc
                c = rc.RagdClient("127.0.0.1", int(sys.argv[2]), timeout=10)
                c.traceparent = sys.argv[3]
                print(c.query("feed a sourdough starter", "kb").sources[0].document_id)
                """, Repo.path("Clients/python"), "\(cluster.coordinator.port)"], [:]),
            ("c", "22222222222222222222222222222222", [Repo.path("Clients/c/ragd-c-query"), "127.0.0.1", "\(cluster.coordinator.port)", "kb", "crontab time fields"], [:]),
        ]
        for (name, callerTrace, command, environment) in callers {
            let tp = "00-\(callerTrace)-\(parent)-01"
            let out = try await run(name == "python" ? command + [tp] : command, environment: name == "c" ? ["TRACEPARENT": tp] : environment)
            #expect(out.status == 0, "\(name): \(out.output) \(out.errors)")
            #expect(await eventually(seconds: 30) { Self.spans(in: file, trace: callerTrace).contains { $0.name == "Query" && $0.parent_span_id == parent } },
                    "\(name) client's trace reached the coordinator")
        }
        await c.close()
    }
}
