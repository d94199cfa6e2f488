import CoreMetrics
import Metrics
import Prometheus

/// The server's Prometheus metrics, in a registry of its own (several servers
/// in one test process must not share counters). Names follow the design:
/// `rag_queries_total{status}`, `rag_query_duration_seconds{component}`,
/// `rag_search_results`, `rag_llm_tokens_total{type}`, plus cache, indexing,
/// partition, RPC and connection figures.
public final class RagMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    static let durationBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    public init() {
        registry = PrometheusCollectorRegistry()
        var f = PrometheusMetricsFactory(registry: registry)
        f.defaultDurationHistogramBuckets = Self.durationBuckets
        factory = f
        // Make the main series visible (at zero) before the first query.
        for status in ["ok", "error"] { _ = Counter(label: "rag_queries_total", dimensions: [("status", status)], factory: factory) }
        for type in ["prompt", "completion"] { _ = Counter(label: "rag_llm_tokens_total", dimensions: [("type", type)], factory: factory) }
        _ = Counter(label: "rag_index_documents_total", factory: factory)
    }

    public func query(ok: Bool) {
        Counter(label: "rag_queries_total", dimensions: [("status", ok ? "ok" : "error")], factory: factory).increment()
    }

    public func duration(_ component: String, seconds: Double) {
        Timer(label: "rag_query_duration_seconds", dimensions: [("component", component)], factory: factory)
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    public func timings(_ t: StageTimings) {
        duration("total", seconds: t.total)
        duration("embed", seconds: t.embed)
        duration("search", seconds: t.search)
        duration("rerank", seconds: t.rerank)
        duration("generate", seconds: t.generate)
    }

    public func searchResults(_ n: Int) {
        Gauge(label: "rag_search_results", factory: factory).record(n)
    }

    public func tokens(prompt: Int, completion: Int) {
        Counter(label: "rag_llm_tokens_total", dimensions: [("type", "prompt")], factory: factory).increment(by: prompt)
        Counter(label: "rag_llm_tokens_total", dimensions: [("type", "completion")], factory: factory).increment(by: completion)
    }

    public func cacheRequest(level: String, result: String) {
        Counter(label: "rag_cache_requests_total", dimensions: [("level", level), ("result", result)], factory: factory).increment()
    }

    public func indexed(documents: Int) {
        Counter(label: "rag_index_documents_total", factory: factory).increment(by: documents)
    }

    public func chunks(collection: String, count: Int) {
        Gauge(label: "rag_index_chunks", dimensions: [("collection", collection)], factory: factory).record(count)
    }

    /// `rag_work_queue_{workers,busy,waiting}{queue}` and `rag_work_queue_completed_total{queue}`,
    /// set from the lanes' own counters when /metrics is scraped.
    public func workQueue(name: String, workers: Int, busy: Int, waiting: Int, completed: UInt64) {
        let d = [("queue", name)]
        Gauge(label: "rag_work_queue_workers", dimensions: d, factory: factory).record(workers)
        Gauge(label: "rag_work_queue_busy", dimensions: d, factory: factory).record(busy)
        Gauge(label: "rag_work_queue_waiting", dimensions: d, factory: factory).record(waiting)
        Gauge(label: "rag_work_queue_completed_total", dimensions: d, factory: factory).record(Double(completed))
    }

    public func partitionSearch(partition: Int, seconds: Double) {
        Timer(label: "rag_partition_search_duration_seconds", dimensions: [("partition", String(partition))], factory: factory)
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    public func rpcError(method: String, code: String) {
        Counter(label: "rag_rpc_errors_total", dimensions: [("method", method), ("code", code)], factory: factory).increment()
    }

    /// Nodes registered in etcd (live leases), as a coordinator last saw them.
    public func clusterNodes(_ n: Int) {
        Gauge(label: "rag_cluster_nodes", factory: factory).record(n)
    }

    /// The placement version this coordinator routes by.
    public func placementVersion(_ v: Int64) {
        Gauge(label: "rag_placement_version", factory: factory).record(Double(v))
    }

    /// A partition move ended: "ok", "failed" (undone, tried again later).
    public func partitionMove(result: String) {
        Counter(label: "rag_partition_moves_total", dimensions: [("result", result)], factory: factory).increment()
    }

    public func connections(_ n: Int) {
        Gauge(label: "rag_open_connections", factory: factory).record(n)
    }

    public func inFlight(_ n: Int) {
        Gauge(label: "rag_inflight_calls", factory: factory).record(n)
    }

    /// The Prometheus text exposition of every metric.
    public func exposition() -> String {
        registry.emitToString()
    }
}
