import ArgumentParser
import RagServer

/// Flags for the hard limits that protect the server from its clients.
struct LimitOptions: ParsableArguments {
    @Option(name: .customLong("max-connections"), help: "Open connections; more are refused with RESOURCE_EXHAUSTED (default 1024).") var maxConnections: Int?
    @Option(name: .customLong("idle-timeout"), help: "Seconds a connection with no call and no traffic stays open (default 300).") var idleTimeout: Int?
    @Option(name: .customLong("frame-timeout"), help: "Seconds a started request frame has to arrive in full (default 30).") var frameTimeout: Int?
    @Option(name: .customLong("max-calls-per-connection"), help: "Calls in flight on one connection (default 128).") var callsPerConnection: Int?
    @Option(name: .customLong("max-calls"), help: "Calls in flight on the server (default 4096).") var calls: Int?
    @Option(name: .customLong("max-unsent-bytes"), help: "Answer bytes one connection may have waiting for the client to read (default 32 MiB).") var unsent: Int?
    @Option(name: .customLong("slow-reader-grace"), help: "Seconds a client may leave its answers unread before it is closed (default 10).") var slowReaderGrace: Int?
    @Option(name: .customLong("max-buffered-frame-bytes"), help: "Bytes of incomplete frames held for all clients together (default 256 MiB).") var bufferedFrames: Int?
    @Option(name: .customLong("max-document-bytes"), help: "UTF-8 bytes of one document's text (default 4 MiB).") var documentBytes: Int?
    @Option(name: .customLong("max-filter-nodes"), help: "Nodes of one filter (default 256).") var filterNodes: Int?
    @Option(name: .customLong("max-in-values"), help: "Values of one `in` list in a filter (default 1024).") var inValues: Int?

    func apply(to c: inout RagServerConfiguration, setting: (String?, String, String) -> String?) throws {
        func int(_ flag: Int?, _ env: String, _ key: String, min: Int = 1) throws -> Int? {
            guard let s = setting(flag.map(String.init), env, key) else { return nil }
            guard let n = Int(s), n >= min else { throw ValidationError("\(key) must be an integer ≥ \(min), got \(s)") }
            return n
        }
        if let v = try int(maxConnections, "RAGD_MAX_CONNECTIONS", "max-connections") { c.limits.maxConnections = v }
        if let v = try int(idleTimeout, "RAGD_IDLE_TIMEOUT", "idle-timeout") { c.limits.idleTimeout = .seconds(v) }
        if let v = try int(frameTimeout, "RAGD_FRAME_TIMEOUT", "frame-timeout") { c.limits.frameTimeout = .seconds(v) }
        if let v = try int(callsPerConnection, "RAGD_MAX_CALLS_PER_CONNECTION", "max-calls-per-connection") { c.limits.maxCallsPerConnection = v }
        if let v = try int(calls, "RAGD_MAX_CALLS", "max-calls") { c.limits.maxCallsPerServer = v }
        if let v = try int(unsent, "RAGD_MAX_UNSENT_BYTES", "max-unsent-bytes") { c.limits.maxUnsentBytesPerConnection = v }
        if let v = try int(slowReaderGrace, "RAGD_SLOW_READER_GRACE", "slow-reader-grace") { c.limits.slowReaderGrace = .seconds(v) }
        if let v = try int(bufferedFrames, "RAGD_MAX_BUFFERED_FRAME_BYTES", "max-buffered-frame-bytes") { c.limits.maxBufferedFrameBytes = v }
        if let v = try int(documentBytes, "RAGD_MAX_DOCUMENT_BYTES", "max-document-bytes") { c.requests.maxDocumentBytes = v }
        if let v = try int(filterNodes, "RAGD_MAX_FILTER_NODES", "max-filter-nodes") { c.requests.maxFilterNodes = v }
        if let v = try int(inValues, "RAGD_MAX_IN_VALUES", "max-in-values") { c.requests.maxFilterInValues = v }
    }
}
