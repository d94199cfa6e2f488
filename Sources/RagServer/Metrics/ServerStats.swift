import Synchronization

/// Counters and latency windows for `Stats`. Percentiles come from the last
/// `window` samples per component (a sliding window, not since start).
public final class ServerStats: Sendable {
    public struct Percentiles: Sendable {
        public var component: String
        public var count: UInt64
        public var p50: Double
        public var p95: Double
        public var p99: Double
        public var mean: Double
    }

    struct Window {
        var samples: [Double] = []
        var next = 0
        var count: UInt64 = 0
        var sum: Double = 0
    }

    struct State {
        var queries: UInt64 = 0
        var queryErrors: UInt64 = 0
        var windows: [String: Window] = [:]
        var connections: UInt64 = 0
        var inFlight: UInt64 = 0
        var promptTokens: UInt64 = 0
        var completionTokens: UInt64 = 0
    }

    public static let components = ["total", "embed", "search", "rerank", "generate"]
    let window: Int
    let state = Mutex(State())
    public let started = ContinuousClock.now

    let metrics: RagMetrics?

    public init(window: Int = 2048, metrics: RagMetrics? = nil) {
        self.window = window
        self.metrics = metrics
    }

    public func recordQuery(ok: Bool, timings: StageTimings?) {
        state.withLock { s in
            s.queries += 1
            if !ok { s.queryErrors += 1 }
            guard let t = timings else { return }
            for (name, value) in [("total", t.total), ("embed", t.embed), ("search", t.search), ("rerank", t.rerank), ("generate", t.generate)] {
                var w = s.windows[name] ?? Window()
                if w.samples.count < window { w.samples.append(value) } else { w.samples[w.next] = value }
                w.next = (w.next + 1) % window
                w.count += 1
                w.sum += value
                s.windows[name] = w
            }
        }
    }

    public func recordTokens(prompt: Int, completion: Int) {
        state.withLock { $0.promptTokens += UInt64(prompt); $0.completionTokens += UInt64(completion) }
    }

    public func connectionOpened() { metrics?.connections(Int(state.withLock { $0.connections += 1; return $0.connections })) }
    public func connectionClosed() { metrics?.connections(Int(state.withLock { $0.connections -= 1; return $0.connections })) }
    public func callStarted() { metrics?.inFlight(Int(state.withLock { $0.inFlight += 1; return $0.inFlight })) }
    public func callEnded() { metrics?.inFlight(Int(state.withLock { $0.inFlight -= 1; return $0.inFlight })) }

    public struct Snapshot: Sendable {
        public var queries: UInt64
        public var queryErrors: UInt64
        public var latency: [Percentiles]
        public var uptimeSeconds: Double
        public var connections: UInt64
        public var inFlight: UInt64
        public var promptTokens: UInt64
        public var completionTokens: UInt64
    }

    public func snapshot() -> Snapshot {
        let s = state.withLock { $0 }
        let latency = Self.components.compactMap { name -> Percentiles? in
            guard let w = s.windows[name], !w.samples.isEmpty else { return nil }
            let sorted = w.samples.sorted()
            func q(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((p * Double(sorted.count)).rounded(.up)) - 1 < 0 ? 0 : Int((p * Double(sorted.count)).rounded(.up)) - 1)] }
            return Percentiles(component: name, count: w.count, p50: q(0.5), p95: q(0.95), p99: q(0.99), mean: w.sum / Double(w.count))
        }
        return Snapshot(queries: s.queries, queryErrors: s.queryErrors, latency: latency, uptimeSeconds: started.elapsedSeconds,
                        connections: s.connections, inFlight: s.inFlight, promptTokens: s.promptTokens, completionTokens: s.completionTokens)
    }
}
