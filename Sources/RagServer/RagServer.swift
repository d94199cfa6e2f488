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
        let registry: CollectionRegistry
        var shardHost: ShardHost?
        switch configuration.role {
        case .all:
            cluster = nil
            registry = try CollectionRegistry(configuration: configuration)
        case .shard:
            cluster = nil
            registry = try CollectionRegistry(configuration: configuration)
            shardHost = try ShardHost(configuration: configuration)
        case .coordinator:
            guard let clusterConfig = configuration.cluster else { throw RagError.invalidArgument("--role coordinator needs --cluster FILE") }
            let c = try Cluster(configuration: clusterConfig, hintPath: configuration.dataDirectory + "/hints.sqlite", logger: logger)
            cluster = c
            registry = try CollectionRegistry(configuration: configuration, partitions: c.shardCount) { info, p in
                guard info.partitions == c.shardCount else {
                    throw RagError.failedPrecondition("collection \(info.name) has \(info.partitions) partitions but the cluster has \(c.shardCount) shards")
                }
                return RemoteShard(collection: info.name, partition: p, dimension: info.dimension, cluster: c)
            }
        }
        var chosenEmbedder = embedder
        if chosenEmbedder == nil, let dir = configuration.miniLMDirectory {
            do { chosenEmbedder = try MiniLMEmbedder(directory: dir) } catch { throw RagError(from: error) }
        }
        if chosenEmbedder == nil, let p = configuration.embeddingProvider {
            chosenEmbedder = try await HTTPEmbedder.connect(flavor: p.flavor == .openai ? .openai : .ollama, model: p.model, http: p.http)
        }
        let embedder = chosenEmbedder ?? HashingEmbedder(dimension: configuration.embeddingDimension)
        var generator = generator
        if generator == nil, let p = configuration.generationProvider {
            generator = HTTPChatGenerator(flavor: p.flavor == .openai ? .openai : .ollama, model: p.model, http: p.http)
        }
        metrics = RagMetrics()
        let l2: (any SharedCache)?
        switch configuration.sharedCache {
        case .none: l2 = nil
        case .sqlite: l2 = try SQLiteSharedCache(path: configuration.dataDirectory + "/cache.sqlite")
        case .redis(let host, let port): l2 = RedisSharedCache(host: host, port: port, timeout: configuration.cache.l2Timeout)
        }
        cache = QueryCache(settings: configuration.cache, l2: l2, metrics: metrics, logger: logger)
        let experiments = try ExperimentManager(path: configuration.dataDirectory + "/experiments.sqlite")
        self.experiments = experiments
        coordinator = Coordinator(configuration: configuration, registry: registry, embedder: embedder,
                                  generator: generator ?? ExtractiveGenerator(), metrics: metrics, queryCache: cache,
                                  reranker: configuration.rerankProvider.map {
                                      HTTPReranker(flavor: configuration.rerankFlavor == "cohere" ? .cohere : .tei, model: $0.model, http: $0.http)
                                  }) { collection in
            experiments.chunkingProfiles(for: collection).map { ($0.name, Int($0.chunkSize), Int($0.chunkOverlap)) }
        }
        stats = ServerStats(metrics: metrics)
        let queries = Mutex<RagService?>(nil)
        let jobs = JobRunner(store: try JobStore(path: configuration.dataDirectory + "/jobs.sqlite"), settings: configuration.jobs,
                             coordinator: coordinator, logger: logger) { request in
            guard let service = queries.withLock({ $0 }) else { throw RagError.unavailable("server is starting") }
            let context = CallContext(callID: 0, method: "Query", requestID: Dispatcher.newRequestID(), deadline: nil, logger: logger)
            return try await service.query(try FrameCodec.bytes(request), context)
        }
        self.jobs = jobs
        let service = RagService(coordinator: coordinator, stats: stats, cache: cache, metrics: metrics,
                                 role: configuration.role.rawValue, cluster: cluster, experiments: experiments, jobs: jobs)
        queries.withLock { $0 = service }
        var handlers = service.handlers
        if let shardHost {
            // A shard node answers the internal RPCs, plus Health and Stats for operators.
            handlers = ShardService(host: shardHost).handlers
            for m in [RagMethod.health, .stats] { handlers[m.rawValue] = service.handlers[m.rawValue] }
        }
        dispatcher = Dispatcher(handlers: handlers, logger: logger, metrics: metrics)
        let collections = await registry.all()
        var chunks = 0
        for c in collections {
            var n = 0
            for s in c.shards { n += try await s.counts().chunks }
            metrics.chunks(collection: c.info.name, count: n)
            chunks += n
        }
        logger.info("opened \(collections.count) collections (\(chunks) chunks) in \(String(format: "%.2f", started.elapsedSeconds)) s from \(configuration.dataDirectory)")
    }

    /// The address the listener is bound to, once it is.
    public var localAddress: SocketAddress? { boundAddress.withLock { $0 } }

    /// The address of the `/metrics` endpoint, once it is bound (nil when disabled).
    public var metricsLocalAddress: SocketAddress? { metricsAddress.withLock { $0 } }

    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            if let port = configuration.metricsPort {
                let endpoint = MetricsEndpoint(metrics: metrics, host: configuration.metricsHost, port: port, logger: logger) { [self] address in
                    self.metricsAddress.withLock { $0 = address }
                }
                group.addTask { try await endpoint.run() }
            }
            if let cluster {
                group.addTask { await cluster.replayHints() }
            }
            if configuration.role != .shard {
                group.addTask { [jobs] in await jobs.run() }
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
            try await serve()
            group.cancelAll()
        }
    }

    func serve() async throws {
        let maxFrame = configuration.maxFrameSize
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrame)))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let address = server.channel.localAddress!
        boundAddress.withLock { $0 = address }
        logger.info("listening on \(address)")
        onListening(address)
        let handler = ConnectionHandler(dispatcher: dispatcher, stats: stats, logger: logger)
        let shutdown = self.shutdown
        let grace = configuration.shutdownGracePeriod
        try await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { race in
                race.addTask {
                    try? await withThrowingDiscardingTaskGroup { group in
                        try await server.executeThenClose { connections in
                            for try await connection in connections {
                                group.addTask { await handler.run(connection, shutdown: shutdown) }
                            }
                        }
                    }
                }
                // Once shutdown begins, connections get `grace` to finish their calls.
                race.addTask {
                    guard (try? await gracefulShutdown()) != nil else { return await Task.yield() }
                    try? await Task.sleep(for: grace)
                }
                await race.next()
                race.cancelAll()
            }
        } onGracefulShutdown: { [logger] in
            logger.info("shutting down: no new connections, finishing calls in flight")
            server.channel.close(promise: nil)
            shutdown.trigger()
        }
        await coordinator.registry.close()
        await cluster?.close()
        logger.info("stopped")
    }
}
