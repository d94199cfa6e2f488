import Foundation
import RagClient
import RagCore
import RagTesting
import Testing

struct Sample: Decodable {
    var family: String
    var type: String
    var name: String
    var labels: [String: String]
    var value: Double
}

/// Runs the Python parser script on the server's /metrics page.
func scrape(port: Int) throws -> [Sample] {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/parse_metrics.py").path
    // A guard against a hung child, not a time limit: a Python start took over
    // 10 s while a full run started every suite at once on 2 cores.
    let r = try runChild("/usr/bin/env", ["python3", script, "http://127.0.0.1:\(port)/metrics"], timeout: 60)
    guard r.status == 0 else { throw RagError(.internal, "parse_metrics.py failed: " + r.errors) }
    return try JSONDecoder().decode([Sample].self, from: Data(r.output.utf8))
}

@Suite struct MetricsTests {
    func value(_ samples: [Sample], _ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { s in s.name == name && labels.allSatisfy { k, v in s.labels[k] == v } }?.value
    }

    @Test func prometheusEndpointCountsAKnownSequence() async throws {
        try await withRagServer { client, server in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            _ = try await client.query("raft leader election", collection: "kb", topK: 3)
            _ = try await client.query("raft leader election", collection: "kb", topK: 3)  // L1 hit
            _ = try await client.query("crontab fields", collection: "kb", topK: 4, noCache: true)
            _ = try? await client.query("x", collection: "missing")
            _ = try? await client.query("", collection: "kb")

            let port = try #require(server.metricsLocalAddress?.port)
            let samples = try await onThread { try scrape(port: port) }
            #expect(value(samples, "rag_queries_total", ["status": "ok"]) == 3)
            #expect(value(samples, "rag_queries_total", ["status": "error"]) == 2)
            #expect(value(samples, "rag_query_duration_seconds_count", ["component": "total"]) == 3)
            #expect(value(samples, "rag_query_duration_seconds_count", ["component": "search"]) == 3)
            #expect(samples.contains { $0.family == "rag_query_duration_seconds" && $0.type == "histogram" })
            #expect(value(samples, "rag_search_results") == 4)  // the last successful query's count
            #expect(value(samples, "rag_llm_tokens_total", ["type": "prompt"]) == 0)  // the extractive generator calls no LLM
            #expect(value(samples, "rag_cache_requests_total", ["level": "l1", "result": "hit"]) == 1)
            #expect(value(samples, "rag_cache_requests_total", ["level": "l1", "result": "miss"]) == 1)
            #expect(value(samples, "rag_cache_requests_total", ["level": "l2", "result": "miss"]) == 1)
            #expect(value(samples, "rag_index_documents_total") == Double(Fixtures.documents.count))
            #expect((value(samples, "rag_index_chunks", ["collection": "kb"]) ?? 0) >= Double(Fixtures.documents.count))
            #expect(value(samples, "rag_rpc_errors_total", ["method": "Query", "code": "NOT_FOUND"]) == 1)
            #expect(value(samples, "rag_rpc_errors_total", ["method": "Query", "code": "INVALID_ARGUMENT"]) == 1)
            // Two searched queries (the cache hit did not search) on each of 4 partitions.
            #expect(value(samples, "rag_partition_search_duration_seconds_count", ["partition": "0"]) == 2)
            #expect(value(samples, "rag_open_connections") == 1)
            // Work queues: two query embeddings (the cache hit needed none), indexing batches in their own lane.
            #expect(value(samples, "rag_work_queue_completed_total", ["queue": "embed-query"]) == 2)
            #expect((value(samples, "rag_work_queue_completed_total", ["queue": "embed-index"]) ?? 0) >= 1)
            #expect(value(samples, "rag_work_queue_workers", ["queue": "embed-index"]) == Double(ProcessInfo.processInfo.activeProcessorCount))
            #expect(value(samples, "rag_work_queue_workers", ["queue": "index-jobs"]) == 1)
            #expect(value(samples, "rag_work_queue_busy", ["queue": "embed-index"]) == 0)
        }
    }
}

/// The Grafana dashboard under Deploy/ parses, and every query in it names a
/// metric Ragd exports: the single-node ones as a live server's /metrics shows
/// them after some traffic, the cluster ones as RagMetrics declares them.
@Suite struct DashboardTests {
    @Test func everyPanelQueriesAnExportedMetric() async throws {
        let path = Repo.path("Deploy/grafana/ragd-dashboard.json")
        let data = try #require(FileManager.default.contents(atPath: path))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let exprs = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(panels.count >= 10 && exprs.count >= panels.count)
        let pattern = try Regex("rag_[a-z0-9_]+")
        let used = Set(exprs.flatMap { $0.matches(of: pattern).map { String($0.output[0].substring ?? "") } })
        let source = try String(contentsOfFile: Repo.path("Sources/RagServer/Metrics/RagMetrics.swift"), encoding: .utf8)
        let declared = Set(source.matches(of: try Regex("label: \"(rag_[a-z0-9_]+)\"")).compactMap { $0.output[1].substring.map(String.init) })
        try await withRagServer { client, server in
            _ = try await client.index(Fixtures.documents, collection: "kb")
            _ = try await client.query("raft leader", collection: "kb", topK: 3)
            _ = try await client.query("raft leader", collection: "kb", topK: 3)
            _ = try? await client.query("x", collection: "missing", topK: 3)
            let live = Set(try await onThread { try scrape(port: server.metricsLocalAddress!.port!) }.map(\.name))
            for name in used.sorted() {
                let base = ["_bucket", "_sum", "_count"].reduce(name) { $0.hasSuffix($1) ? String($0.dropLast($1.count)) : $0 }
                let cluster = ["rag_cluster_nodes", "rag_placement_version", "rag_partition_moves_total"].contains(base)
                #expect(declared.contains(base), "\(name) is not a metric Ragd declares")
                if !cluster { #expect(live.contains(name) || live.contains(base), "\(name) is not on a live server's /metrics") }
            }
        }
    }
}
