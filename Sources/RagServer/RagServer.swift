import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
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
    /// Partition moves (a coordinator with --etcd).
    let rebalancer: Rebalancer?
    public let experiments: ExperimentManager
    public let jobs: JobRunner
    /// Server-wide connection counters, shared by every connection.
    let budget: ConnectionBudget
    let dispatcher: Dispatcher
    /// Shard RPCs, on a shard node's internal listener.
    let internalDispatcher: Dispatcher?
    let authorizer: Authorizer
    let etcd: EtcdClient?
    let shardHost: ShardHost?
    let logger: Logger
    let group: any EventLoopGroup
    let onListening: @Sendable (ListenerAddress) -> Void
    let shutdown = ShutdownSignal()
    private let boundAddress = Mutex<SocketAddress?>(nil)
    private let internalAddress = Mutex<SocketAddress?>(nil)
    private let metricsAddress = Mutex<SocketAddress?>(nil)

    /// Opens storage (loading every collection's vectors) and prepares the listener.
    public init(
        configuration: RagServerConfiguration,
        embedder: (any Embedder)? = nil,
        generator: (any Generator)? = nil,
        logger: Logger = Logger(label: "ragd"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onListening: @escaping @Sendable (ListenerAddress) -> Void = { _ in }
    ) async throws {
        self.configuration = configuration
        budget = ConnectionBudget(limits: configuration.limits)
        self.logger = logger
        self.group = eventLoopGroup
        self.onListening = onListening
        let started = ContinuousClock.now
        VectorBacking.fallbackReport.withLock { $0 = { [logger] why in logger.warning("\(why)") } }
        LocalShard.openReport.withLock { $0 = { [logger] what in logger.info("partition \(what)") } }
        // Setup is split into helpers: one large async initializer crashed the
        // optimizer (coroutine splitting) in release builds.
        let etcd = configuration.etcdEndpoints.isEmpty ? nil : EtcdClient(endpoints: configuration.etcdEndpoints)
        self.etcd = etcd
        let metrics = RagMetrics()
        self.metrics = metrics
        let (registry, cluster, shardHost) = try await Self.storage(configuration, etcd: etcd, metrics: metrics, logger: logger)
        self.shardHost = shardHost
        self.cluster = cluster
        rebalancer = cluster?.store.map {
            Rebalancer(store: $0, cluster: cluster!, me: (configuration.nodeID ?? "\(ProcessInfo.processInfo.hostName):\(configuration.port)") + "#\(getpid())",
                       logger: logger, metrics: metrics, antiEntropyInterval: configuration.antiEntropyInterval)
        }
        let embedder = try await Self.resolveEmbedder(embedder, configuration)
        cache = try Self.makeCache(configuration, etcd: etcd, metrics: metrics, logger: logger)
        let experiments = try ExperimentManager(path: configuration.dataDirectory + "/experiments.sqlite",
                                                etcd: configuration.role == .coordinator ? etcd : nil)
        try? await experiments.refresh()
        self.experiments = experiments
        coordinator = Self.makeCoordinator(configuration, registry: registry, embedder: embedder, generator: generator,
                                           metrics: metrics, cache: cache, experiments: experiments)
        stats = ServerStats(metrics: metrics)
        if configuration.role != .shard {
            let why = configuration.embedderChoice.map { ", \($0)" } ?? ""
            logger.info("embedder \(coordinator.embedderDescription)\(why)\(embedder.isLexical ? "; lexical: hybrid queries rank by BM25 and vector hits only fill in" : "")")
        }
        (jobs, dispatcher, internalDispatcher, authorizer) = try await Self.makeDispatchers(configuration, coordinator: coordinator, stats: stats, cache: cache, metrics: metrics,
                                                     cluster: cluster, rebalancer: rebalancer, experiments: experiments, shardHost: shardHost, etcd: etcd, logger: logger)
        await Self.reportCollections(registry, metrics: metrics, logger: logger, started: started, configuration: configuration, embedder: embedder)
    }

    /// The address the listener is bound to, once it is.
    public var localAddress: SocketAddress? { boundAddress.withLock { $0 } }

    /// The address of a shard node's internal listener, once it is bound.
    public var internalLocalAddress: SocketAddress? { internalAddress.withLock { $0 } }

    /// Bytes of incomplete request frames the server holds for all its connections
    /// (the budget `ConnectionLimits.maxBufferedFrameBytes` bounds).
    public var bufferedFrameBytes: Int { budget.bufferedFrameBytes.load(ordering: .relaxed) }

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
                                               refresh: { [jobs, coordinator, etcd, role = configuration.role] in
                                                   await Self.refreshGauges(registry, metrics: metrics, jobs: role == .shard ? nil : jobs, coordinator: coordinator)
                                                   if role == .coordinator, let etcd, let nodes = try? await NodeRegistration.nodes(etcd) {
                                                       metrics.clusterNodes(nodes.count)
                                                   }
                                               }) { [self] address in
                    self.metricsAddress.withLock { $0 = address }
                }
                group.addTask { try await endpoint.run() }
            }
            if let cluster {
                group.addTask { await cluster.watch() }
            }
            if let rebalancer {
                group.addTask { await rebalancer.run() }
            }
            if let shardHost, let etcd {
                // Nodes follow the placement too: a fence at every version they see.
                group.addTask { [logger] in
                    let store = PlacementStore(etcd: etcd)
                    while !Task.isCancelled {
                        if let (p, _) = try? await store.load() {
                            do { try await shardHost.raiseFence(p.version) } catch { logger.warning("placement fence: \(error)") }
                        }
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
            }
            group.addTask { [authorizer] in await authorizer.refreshLoop() }
            group.addTask { [experiments] in await experiments.refreshLoop() }
            if let etcd {
                let registration = NodeRegistration(etcd: etcd, logger: logger) { [self] in await self.nodeInfo() }
                group.addTask { [self] in
                    // Registered once every listener is bound: the entry names their ports.
                    while localAddress == nil || (internalDispatcher != nil && internalLocalAddress == nil) {
                        guard (try? await Task.sleep(for: .milliseconds(20))) != nil else { return }
                    }
                    await registration.run()
                }
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

    /// The listeners of this role: the public one, and a shard's internal one.
    func listeners() throws(RagError) -> [Listener] {
        var out = [Listener(name: "public", host: configuration.host, port: configuration.port,
                            tls: try configuration.tls?.makeContext(), dispatcher: dispatcher)]
        if let internalDispatcher {
            guard let l = configuration.internalListener else {
                throw .invalidArgument("a shard node serves shard RPCs only on its internal listener: give --internal-port (and --cluster-ca, --cluster-cert, --cluster-key)")
            }
            out.append(Listener(name: "internal", host: l.host, port: l.port, tls: try l.tls?.makeContext(), dispatcher: internalDispatcher))
        }
        return out
    }

    func serve(beforeClosingStorage: () async -> Void) async throws {
        let maxFrame = configuration.maxFrameSize
        var bound: [(Listener, NIOAsyncChannel<any Channel, Never>)] = []
        for listener in try listeners() {
            let server = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                // Draining shuts the input side of each connection; without this NIO would
                // turn that EOF into a full close and drop the answers still to be sent.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .bind(host: listener.host, port: listener.port) { channel in
                    AcceptedChannel.prepare(channel)  // wrapped in its serving task
                }
            let address = server.channel.localAddress!
            if listener.name == "internal" {
                internalAddress.withLock { $0 = address }
                logger.info("internal listener on \(address)\(listener.tls == nil ? " without TLS (--insecure)" : " (mutual TLS)")")
            } else {
                boundAddress.withLock { $0 = address }
                logger.info("listening on \(address)\(listener.tls == nil ? "" : " (TLS)")")
            }
            bound.append((listener, server))
        }
        // The public address last: scripts read it as "ready", internal listener included.
        if let address = internalLocalAddress { onListening(.internal(address)) }
        let servers = bound.map(\.1.channel)
        let listening = bound
        onListening(.public(localAddress!))
        let budget = self.budget
        let shutdown = self.shutdown
        let stats = self.stats
        let logger = self.logger
        let grace = configuration.shutdownGracePeriod
        try await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { race in
                race.addTask {
                    await withTaskGroup(of: Void.self) { loops in
                        for (listener, server) in listening {
                            let handler = ConnectionHandler(dispatcher: listener.dispatcher, stats: stats, budget: budget, logger: logger)
                            loops.addTask {
                                await Self.accept(server, tls: listener.tls, budget: budget, maxFrame: maxFrame, handler: handler, shutdown: shutdown)
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
            for channel in servers { channel.close(promise: nil) }
            shutdown.trigger()
        }
        await beforeClosingStorage()
        await coordinator.registry.close()
        if let shardHost { for shard in await shardHost.all() { await shard.close() } }
        await cluster?.close()
        // Every file this server opened is closed when it stops, so a process that
        // runs servers one after another (tests, embedders) does not pile them up.
        await cache.close()
        await jobs.queue.close()
        experiments.close()
        await authorizer.close()
        logger.info("stopped")
    }

    /// One listener's accept loop: each connection is served in its own task.
    static func accept(_ server: NIOAsyncChannel<any Channel, Never>, tls: NIOSSLContext?, budget: ConnectionBudget, maxFrame: Int,
                       handler: ConnectionHandler, shutdown: ShutdownSignal) async {
        try? await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await channel in connections {
                    group.addTask {
                        guard budget.admitConnection() else {
                            await AcceptedChannel.refuse(channel, tls: tls, RagError(
                                .resourceExhausted, "the server has \(budget.limits.maxConnections) connections open; try again later"))
                            return
                        }
                        defer { budget.connectionClosed() }
                        let state = ConnectionState(limits: budget.limits)
                        let wrapped = try? await AcceptedChannel.wrap(channel, as: NIOAsyncChannel<ByteBuffer, ByteBuffer>.self) {
                            // TLS first: the guard and the decoder see plaintext frames; the guard
                            // also times the handshake (--frame-timeout).
                            if let tls { try $0.addHandler(NIOSSLServerHandler(context: tls)) }
                            try $0.addHandler(ConnectionGuard(budget: budget, connection: state, maxFrameSize: maxFrame, tls: tls != nil))
                            try $0.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrame)))
                        }
                        guard let connection = wrapped else { channel.close(promise: nil); return }
                        await handler.run(connection, state: state, shutdown: shutdown)
                    }
                }
            }
        }
    }
}
