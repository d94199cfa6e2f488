import Foundation
import Logging
import RagCore
import RagEngine
import RagWire
import Synchronization

extension RagServer {
    /// The collection registry for the role, with the cluster (coordinator) or
    /// the shard host (shard node).
    static func storage(_ configuration: RagServerConfiguration, etcd: EtcdClient?, metrics: RagMetrics,
                        logger: Logger) async throws -> (CollectionRegistry, Cluster?, ShardHost?) {
        switch configuration.role {
        case .all:
            return (try await CollectionRegistry(configuration: configuration), nil, nil)
        case .shard:
            return (try await CollectionRegistry(configuration: configuration), nil, try ShardHost(configuration: configuration))
        case .coordinator:
            let store = etcd.map { PlacementStore(etcd: $0) }
            let placement: Placement
            if let store {
                placement = try await store.bootstrap(file: configuration.cluster, partitions: configuration.logicalPartitions,
                                                      replication: configuration.replication, logger: logger)
            } else {
                guard let file = configuration.cluster else { throw RagError.invalidArgument("--role coordinator needs --cluster FILE or --etcd") }
                placement = Placement(file: file)
            }
            let c = try Cluster(placement: placement, store: store, tls: configuration.clusterTLS, maxFrameSize: configuration.maxFrameSize, logger: logger) { metrics.placementVersion($0.version) }
            let catalog = etcd.map { EtcdCatalog(etcd: $0) }
            let registry = try await CollectionRegistry(configuration: configuration, partitions: placement.partitions, catalog: catalog) { info, p in
                guard info.partitions <= c.partitions else {
                    throw RagError.failedPrecondition("collection \(info.name) has \(info.partitions) partitions but the cluster has \(c.partitions) logical partitions")
                }
                return RemoteShard(collection: info.storage, partition: p, dimension: info.dimension, embedder: info.embedder,
                                   partitions: info.partitions, index: info.index, cluster: c)
            }
            return (registry, c, nil)
        }
    }

    /// The embedder: the one given, else the local MiniLM, a provider, or the built-in hashing one.
    static func resolveEmbedder(_ given: (any Embedder)?, _ configuration: RagServerConfiguration) async throws -> any Embedder {
        if let given { return given }
        if let dir = configuration.miniLMDirectory {
            do { return try MiniLMEmbedder(directory: dir, precision: configuration.miniLMPrecision ?? .preferred) } catch { throw RagError(from: error) }
        }
        if let p = configuration.embeddingProvider {
            return try await HTTPEmbedder.connect(flavor: p.flavor, model: p.model, http: p.http)
        }
        return HashingEmbedder(dimension: configuration.embeddingDimension)
    }

    static func makeCache(_ configuration: RagServerConfiguration, etcd: EtcdClient?, metrics: RagMetrics, logger: Logger) throws -> QueryCache {
        var l2: (any SharedCache)?
        switch configuration.sharedCache {
        case .none: l2 = nil
        case .sqlite: l2 = try SQLiteSharedCache(path: configuration.dataDirectory + "/cache.sqlite")
        case .redis(let host, let port): l2 = RedisSharedCache(host: host, port: port, timeout: configuration.cache.l2Timeout)
        }
        // Coordinators sharing etcd share the write generations through it,
        // whatever their second level is.
        if let etcd { l2 = EtcdGenerations(etcd: etcd, base: l2) }
        return QueryCache(settings: configuration.cache, l2: l2, metrics: metrics, logger: logger)
    }

    static func makeCoordinator(_ configuration: RagServerConfiguration, registry: CollectionRegistry, embedder: any Embedder, generator: (any Generator)?,
                                metrics: RagMetrics, cache: QueryCache, experiments: ExperimentManager) -> Coordinator {
        var chosen = generator
        if chosen == nil, let p = configuration.generationProvider {
            chosen = HTTPChatGenerator(flavor: p.flavor, model: p.model, http: p.http)
        }
        let reranker = configuration.rerankProvider.map {
            HTTPReranker(flavor: configuration.rerankFlavor == "cohere" ? .cohere : .tei, model: $0.model, http: $0.http)
        }
        return Coordinator(configuration: configuration, registry: registry, embedder: embedder, generator: chosen ?? ExtractiveGenerator(),
                           metrics: metrics, queryCache: cache, reranker: reranker) { collection in
            experiments.chunkingProfiles(for: collection).map { ($0.name, Int($0.chunkSize), Int($0.chunkOverlap)) }
        }
    }

    /// The job runner and the dispatchers: the public one (API keys checked on
    /// every call) and, on a shard node, the internal one (shard RPCs, trusted
    /// because the internal listener requires a cluster certificate).
    static func makeDispatchers(_ configuration: RagServerConfiguration, coordinator: Coordinator, stats: ServerStats, cache: QueryCache,
                                metrics: RagMetrics, cluster: Cluster?, rebalancer: Rebalancer?, experiments: ExperimentManager, shardHost: ShardHost?,
                                etcd: EtcdClient?, logger: Logger) async throws -> (JobRunner, Dispatcher, Dispatcher?, Authorizer) {
        let queries = Mutex<RagService?>(nil)
        let queue: any JobQueue
        switch configuration.jobBackend {
        case .sqlite: queue = try SQLiteJobQueue(path: configuration.dataDirectory + "/jobs.sqlite")
        case .redis(let host, let port): queue = RedisJobQueue(host: host, port: port, visibilityTimeout: configuration.jobs.visibilityTimeout)
        }
        // Reindex reads and switches storages in this process: single servers only.
        let reindexer = configuration.role == .all
            ? Reindexer(coordinator: coordinator, dataDirectory: configuration.dataDirectory, logger: logger) : nil
        let jobs = JobRunner(queue: queue, settings: configuration.jobs,
                             coordinator: coordinator, logger: logger, reindexer: reindexer) { request in
            guard let service = queries.withLock({ $0 }) else { throw RagError.unavailable("server is starting") }
            let context = CallContext(callID: 0, method: "Query", requestID: Dispatcher.newRequestID(), deadline: nil, logger: logger)
            return try await service.query(try FrameCodec.bytes(request), context)
        }
        // Coordinators sharing etcd share their keys there too.
        let keyStore: any APIKeyStore = try etcd.map { EtcdKeyStore(etcd: $0) } ?? KeyStore(path: configuration.dataDirectory + "/keys.sqlite")
        let authorizer = try await Authorizer(store: keyStore, required: configuration.requireKeys)
        let service = RagService(coordinator: coordinator, stats: stats, cache: cache, metrics: metrics, role: configuration.role.rawValue,
                                 cluster: cluster, rebalancer: rebalancer, experiments: experiments, jobs: jobs, authorizer: authorizer, controlPlane: etcd,
                                 snapshots: configuration.role == .shard ? nil
                                    : SnapshotManager(coordinator: coordinator, reindexer: reindexer, dataDirectory: configuration.dataDirectory, logger: logger))
        queries.withLock { $0 = service }
        func dispatcher(_ handlers: [String: RPCHandler], _ authorizer: Authorizer?) -> Dispatcher {
            Dispatcher(handlers: handlers, logger: logger, metrics: metrics, maxFrameSize: configuration.maxFrameSize,
                       dataDirectory: configuration.dataDirectory, authorizer: authorizer, accessLog: configuration.accessLog)
        }
        guard let shardHost else { return (jobs, dispatcher(service.handlers, authorizer), nil, authorizer) }
        // A shard node: shard RPCs only on the internal listener; the public one
        // answers Health, Stats and key management for operators.
        let operatorMethods = [RagMethod.health, .stats, .createKey, .listKeys, .revokeKey]
        var internalHandlers = ShardService(host: shardHost).handlers
        var publicHandlers: [String: RPCHandler] = [:]
        for m in operatorMethods { publicHandlers[m.rawValue] = service.handlers[m.rawValue] }
        for m in [RagMethod.health, .stats] { internalHandlers[m.rawValue] = service.handlers[m.rawValue] }
        for m in RagMethod.allCases where m.rawValue.hasPrefix("Shard") {
            publicHandlers[m.rawValue] = .unary { _, _ in
                throw RagError.permissionDenied("\(m.rawValue) is served only on the shard's internal listener (--internal-port, mutual TLS)")
            }
        }
        return (jobs, dispatcher(publicHandlers, authorizer), dispatcher(internalHandlers, nil), authorizer)
    }

    /// Sets `rag_index_chunks` for every collection from its shards' counts;
    /// returns the number of collections and of chunks.
    @discardableResult
    static func refreshChunkGauges(_ registry: CollectionRegistry, metrics: RagMetrics) async -> (Int, Int) {
        let collections = await registry.all()
        var total = 0
        for c in collections {
            var n = 0
            for s in c.shards { n += (try? await s.counts().chunks) ?? 0 }
            metrics.chunks(collection: c.info.name, count: n)
            total += n
        }
        return (collections.count, total)
    }

    /// Everything /metrics reports from state rather than events: chunk counts and work queues.
    static func refreshGauges(_ registry: CollectionRegistry, metrics: RagMetrics, jobs: JobRunner?, coordinator: Coordinator) async {
        await refreshChunkGauges(registry, metrics: metrics)
        for q in await coordinator.workQueues(jobs: jobs) {
            metrics.workQueue(name: q.name, workers: Int(q.workers), busy: Int(q.busy), waiting: Int(q.waiting), completed: q.completed)
        }
    }

    /// Counts what was loaded, for the chunk gauges and the start-up log line.
    static func reportCollections(_ registry: CollectionRegistry, metrics: RagMetrics, logger: Logger, started: ContinuousClock.Instant,
                                  configuration: RagServerConfiguration, embedder: any Embedder) async {
        let (collections, chunks) = await refreshChunkGauges(registry, metrics: metrics)
        logger.info("opened \(collections) collections (\(chunks) chunks) in \(String(format: "%.2f", started.elapsedSeconds)) s from \(configuration.dataDirectory)")
        // After an upgrade `--embedder auto` may pick MiniLM over data the hashing
        // embedder built: say so once, not only in each refused call.
        guard configuration.role != .shard else { return }
        for c in await registry.all() where c.info.embedder != embedder.id {
            let flag = Coordinator.embedderFlag(for: c.info.embedder)
            logger.warning("collection \(c.info.name) was built with \(c.info.embedder), not \(embedder.id): its queries and writes are refused; start with \(flag) to serve it, or re-index it into a new collection")
        }
    }

    /// This node as etcd's membership shows it (refreshed with each lease renewal).
    func nodeInfo() async -> NodeInfo {
        let publicPort = localAddress?.port ?? configuration.port
        func advertised(_ host: String) -> String {
            if let a = configuration.advertiseHost { return a }
            return ["0.0.0.0", "::", "[::]"].contains(host) ? ProcessInfo.processInfo.hostName : host
        }
        var chunks = 0
        if let shardHost {
            for s in await shardHost.all() { chunks += (try? await s.counts().chunks) ?? 0 }
        }
        let internalAddress = internalLocalAddress.map { "\(advertised(configuration.internalListener?.host ?? configuration.host)):\($0.port ?? 0)" } ?? ""
        return NodeInfo(id: configuration.nodeID ?? "\(ProcessInfo.processInfo.hostName):\(publicPort)", role: configuration.role.rawValue,
                        publicAddress: "\(advertised(configuration.host)):\(publicPort)", internalAddress: internalAddress,
                        version: RagService.version, startedAt: Date().timeIntervalSince1970 - stats.started.elapsedSeconds, chunks: chunks,
                        freeBytes: NodeRegistration.freeBytes(configuration.dataDirectory))
    }
}
