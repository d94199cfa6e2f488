import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// `GET /metrics` in Prometheus text format on its own port (default 9464).
public struct MetricsEndpoint: Service {
    let metrics: RagMetrics
    let host: String
    let port: Int
    let logger: Logger
    let onListening: @Sendable (SocketAddress) -> Void
    /// Brings state gauges (e.g. chunks per collection) up to date before each scrape.
    let refresh: @Sendable () async -> Void

    public init(metrics: RagMetrics, host: String, port: Int, logger: Logger, refresh: @escaping @Sendable () async -> Void = {},
                onListening: @escaping @Sendable (SocketAddress) -> Void = { _ in }) {
        self.refresh = refresh
        self.metrics = metrics
        self.host = host
        self.port = port
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                AcceptedChannel.prepare(channel)  // wrapped in its serving task
            }
        let address = server.channel.localAddress!
        logger.info("metrics on http://\(address)/metrics")
        onListening(address)
        let metrics = self.metrics
        let refresh = self.refresh
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { connections in
                    for try await channel in connections {
                        group.addTask {
                            let wrapped = try? await AcceptedChannel.wrap(channel, as: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>.self) {
                                try $0.configureHTTPServerPipeline()
                            }
                            guard let connection = wrapped else { channel.close(promise: nil); return }
                            try? await Self.serve(connection, metrics: metrics, refresh: refresh)
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            server.channel.close(promise: nil)
        }
    }

    static func serve(_ channel: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, metrics: RagMetrics,
                      refresh: @Sendable () async -> Void) async throws {
        try await channel.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            for try await part in inbound {
                switch part {
                case .head(let h): head = h
                case .body: break
                case .end:
                    guard let h = head else { continue }
                    let ok = h.method == .GET && (h.uri == "/metrics" || h.uri.hasPrefix("/metrics?"))
                    if ok { await refresh() }
                    let body = ok ? metrics.exposition() : "not found: try GET /metrics\n"
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain")
                    headers.add(name: "Content-Length", value: String(body.utf8.count))
                    headers.add(name: "Connection", value: h.isKeepAlive ? "keep-alive" : "close")
                    try await outbound.write(.head(HTTPResponseHead(version: h.version, status: ok ? .ok : .notFound, headers: headers)))
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body))))
                    try await outbound.write(.end(nil))
                    if !h.isKeepAlive { return }
                    head = nil
                }
            }
        }
    }
}
