import Logging
import NIOCore
import NIOPosix
import RagCore
import RagEngine
import RagWire
import ServiceLifecycle
import Synchronization

/// A Ragd server: one TCP listener in front of the dispatcher and coordinator.
///
/// A `Service`: run it in a `ServiceGroup`; on graceful shutdown it stops
/// accepting, lets calls in flight finish (up to the grace period), closes
/// connections and then storage.
public final class RagServer: Service, Sendable {
    public let configuration: RagServerConfiguration
    public let coordinator: Coordinator
    public let stats: ServerStats
    public let metrics: RagMetrics
    public let cache: QueryCache
    public let cluster: Cluster?
    public let experiments: ExperimentManager
    public let jobs: JobRunner
    let dispatcher: Dispatcher
    let logger: Logger
    let group: any EventLoopGroup
    let onListening: @Sendable (SocketAddress) -> Void
    let shutdown = ShutdownSignal()
    private let boundAddress = Mutex<SocketAddress?>(nil)
    private let metricsAddress = Mutex<SocketAddress?>(nil)

    /// Opens storage (loading every collection's vectors) and prepares the listener.
    public init(
        configuration: RagServerConfiguration,
        embedder: (any Embedder)? = nil,
        generator: (any Generator)? = nil,
        logger: Logger = Logger(label: "ragd"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onListening: @escaping @Sendable (SocketAddress) -> Void = { _ in }
    ) async throws {
        self.configuration = configuration
        self.logger = logger
        self.group = eventLoopGroup
        self.onListening = onListening
        let started = ContinuousClock.now
        // Setup is split into helpers: one large async initializer crashed the
        // optimizer (coroutine splitting) in release builds.
        let (registry, cluster, shardHost) = try Self.storage(configuration, logger: logger)
        self.cluster = cluster
        let embedder = try await Self.resolveEmbedder(embedder, configuration)
        metrics = RagMetrics()
        cache = try Self.makeCache(configuration, metrics: metrics, logger: logger)
        let experiments = try ExperimentManager(path: configuration.dataDirectory + "/experiments.sqlite")
        self.experiments = experiments
        coordinator = Self.makeCoordinator(configuration, registry: registry, embedder: embedder, generator: generator,
                                           metrics: metrics, cache: cache, experiments: experiments)
        stats = ServerStats(metrics: metrics)
        (jobs, dispatcher) = try Self.makeDispatcher(configuration, coordinator: coordinator, stats: stats, cache: cache, metrics: metrics,
                                                     cluster: cluster, experiments: experiments, shardHost: shardHost, logger: logger)
        await Self.reportCollections(registry, metrics: metrics, logger: logger, started: started, configuration: configuration)
    }

    /// The address the listener is bound to, once it is.
    public var localAddress: SocketAddress? { boundAddress.withLock { $0 } }

    /// The address of the `/metrics` endpoint, once it is bound (nil when disabled).
    public var metricsLocalAddress: SocketAddress? { metricsAddress.withLock { $0 } }

    public func run() async throws {
        // Job workers stop before storage closes, so a running job is handed back
        // to the queue instead of failing on closed storage.
        let workers: Task<Void, Never>? = configuration.role == .shard ? nil : Task { [jobs] in await jobs.run() }
        defer { workers?.cancel() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            if let port = configuration.metricsPort {
                let registry = coordinator.registry
                let metrics = self.metrics
                let endpoint = MetricsEndpoint(metrics: metrics, host: configuration.metricsHost, port: port, logger: logger,
                                               refresh: { [jobs, coordinator, role = configuration.role] in
                                                   await Self.refreshGauges(registry, metrics: metrics, jobs: role == .shard ? nil : jobs, coordinator: coordinator)
                                               }) { [self] address in
                    self.metricsAddress.withLock { $0 = address }
                }
                group.addTask { try await endpoint.run() }
            }
            if let cluster {
                group.addTask { await cluster.replayHints() }
            }
            if let sqlite = cache.l2 as? SQLiteSharedCache {
                group.addTask { [logger] in
                    // Janitor: expired L2 rows go away even if nobody asks for them again.
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(60))
                        if Task.isCancelled { break }
                        do { _ = try await sqlite.purgeExpired() } catch { logger.warning("cache janitor: \(error)") }
                    }
                }
            }
            try await serve { workers?.cancel(); await workers?.value }
            group.cancelAll()
        }
    }

    func serve(beforeClosingStorage: () async -> Void) async throws {
        let maxFrame = configuration.maxFrameSize
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // Draining shuts the input side of each connection; without this NIO would
            // turn that EOF into a full close and drop the answers still to be sent.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(host: configuration.host, port: configuration.port) { channel in
                AcceptedChannel.prepare(channel)  // wrapped in its serving task
            }
        let address = server.channel.localAddress!
        boundAddress.withLock { $0 = address }
        logger.info("listening on \(address)")
        onListening(address)
        let budget = ConnectionBudget(limits: configuration.limits)
        let handler = ConnectionHandler(dispatcher: dispatcher, stats: stats, budget: budget, logger: logger)
        let shutdown = self.shutdown
        let grace = configuration.shutdownGracePeriod
        try await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { race in
                race.addTask {
                    try? await withThrowingDiscardingTaskGroup { group in
                        try await server.executeThenClose { connections in
                            for try await channel in connections {
                                group.addTask {
                                    guard budget.admitConnection() else {
                                        await AcceptedChannel.refuse(channel, RagError(
                                            .resourceExhausted, "the server has \(budget.limits.maxConnections) connections open; try again later"))
                                        return
                                    }
                                    defer { budget.connectionClosed() }
                                    let state = ConnectionState(limits: budget.limits)
                                    let wrapped = try? await AcceptedChannel.wrap(channel, as: NIOAsyncChannel<ByteBuffer, ByteBuffer>.self) {
                                        try $0.addHandler(ConnectionGuard(budget: budget, connection: state, maxFrameSize: maxFrame))
                                        try $0.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrame)))
                                    }
                                    guard let connection = wrapped else { channel.close(promise: nil); return }
                                    await handler.run(connection, state: state, shutdown: shutdown)
                                }
                            }
                        }
                    }
                }
                // Once shutdown begins, connections get `grace` to finish their calls.
                race.addTask { [stats, logger] in
                    guard (try? await gracefulShutdown()) != nil else { return await Task.yield() }
                    guard (try? await Task.sleep(for: grace)) != nil else { return }  // everyone finished in time
                    let s = stats.snapshot()
                    logger.warning("grace period over: closing \(s.connections) connections with \(s.inFlight) calls in flight")
                }
                await race.next()
                race.cancelAll()
            }
        } onGracefulShutdown: { [logger] in
            logger.info("shutting down: no new connections, finishing calls in flight")
            server.channel.close(promise: nil)
            shutdown.trigger()
        }
        await beforeClosingStorage()
        await coordinator.registry.close()
        await cluster?.close()
        logger.info("stopped")
    }
}
