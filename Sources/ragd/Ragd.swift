import ArgumentParser
import Foundation
import Logging
import RagCore
import RagEngine
import RagServer
import ServiceLifecycle

@main
struct Ragd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ragd",
        abstract: "The Ragd retrieval-augmented-generation server.",
        subcommands: [Serve.self, Keys.self],
        defaultSubcommand: Serve.self)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the Ragd protocol.",
        discussion: """
            Settings come from, in increasing priority: defaults, --config FILE (JSON with the \
            same names as the flags, e.g. {"port": 7000, "data-dir": "/var/lib/ragd"}), \
            RAGD_* environment variables (RAGD_HOST, RAGD_PORT, RAGD_DATA_DIR, RAGD_PARTITIONS, \
            RAGD_MAX_FRAME_SIZE, RAGD_SYNCHRONOUS, RAGD_LOG_LEVEL), then flags.
            """)

    @Option(help: "A JSON configuration file.") var config: String?
    @Option(help: "Address to listen on (default 127.0.0.1).") var host: String?
    @Option(help: "Port to listen on; 0 picks a free one (default 7878).") var port: Int?
    @Option(name: .customLong("data-dir"), help: "Data directory (default ./ragd-data).") var dataDir: String?
    @Option(help: "Partitions per new collection (default 4).") var partitions: Int?
    @Option(name: .customLong("vector-index"), help: "For collections whose Index call named no index: exact (float32 scan, default; also 'flat'), int8 (int8 first pass, best candidates rescored exactly), hnsw (an HNSW graph per partition: approximate) or auto (exact while a partition is small, hnsw from --auto-hnsw-threshold chunks).") var vectorIndex: String?
    @Option(name: .customLong("hnsw-save-every"), help: "Chunks written or deleted in a partition between background saves of its HNSW graph, or a quarter of the graph if more (default 20000; 0: only at stop).") var hnswSaveEvery: Int?
    @Option(name: .customLong("auto-hnsw-threshold"), help: "Index kind auto: chunks in a partition from which it gets an HNSW graph (default 20000).") var autoHNSWThreshold: Int?
    @Option(name: .customLong("hnsw-ef"), help: "With --vector-index hnsw: candidates a query keeps (default 64; at least k).") var hnswEf: Int?
    @Option(name: .customLong("hnsw-m"), help: "With --vector-index hnsw: links per node (default 16).") var hnswM: Int?
    @Option(name: .customLong("hnsw-walk"), help: "With --vector-index hnsw: what a query's walk reads, int8 (codes, a quarter of the bytes; the nodes it keeps are rescored from the floats) or float (default float).") var hnswWalk: String?
    @Option(name: .customLong("hnsw-ef-construction"), help: "With --vector-index hnsw: candidates kept while linking (default 100).") var hnswEfConstruction: Int?
    @Option(name: .customLong("max-frame-size"), help: "Largest accepted frame in bytes (default 16 MiB).") var maxFrameSize: Int?
    @Option(help: "SQLite synchronous mode: full (default, survives power loss) or normal.") var synchronous: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info (default), notice, warning, error.") var logLevel: String?
    @Option(name: .customLong("otel-endpoint"), help: "Export traces over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318); off by default.") var otelEndpoint: String?
    @Option(name: .customLong("otel-service-name"), help: "Service name in exported traces (default ragd-ROLE).") var otelServiceName: String?
    @Option(name: .customLong("log-format"), help: "text (default) or json (one object per line, for log shippers).") var logFormat: String?
    @Flag(name: .customLong("access-log"), help: "Log every finished call at info: request id, method, status, duration.") var accessLog = false
    @Option(help: "all (default: everything in one process), coordinator (public RPCs over shard nodes) or shard.") var role: String?
    @Option(help: "Cluster file (JSON) for --role coordinator (with --etcd: published there by the first coordinator).") var cluster: String?
    @Option(help: "etcd endpoints host:port[,host:port…] (its client port): coordinators share the cluster layout, catalog, write generations and keys there; every node registers there under a lease.") var etcd: String?
    @Option(name: .customLong("node-id"), help: "This node's id in etcd (default: host name and public port).") var nodeID: String?
    @Option(name: .customLong("replication-log"), help: "Shard node: replication log entries kept per partition behind the newest, for replicas that catch up (default 10000; older ones are copied).") var replicationLog: Int?
    @Option(name: .customLong("anti-entropy-interval"), help: "Coordinator with --etcd: seconds between comparisons of every in-sync replica with its primary (repairs are logged; 0: off; default 10).") var antiEntropyInterval: Double?
    @Option(name: .customLong("replication-log-mb"), help: "Shard node: megabytes of replication log kept per partition (default 64; the entry limit applies too).") var replicationLogMB: Int?
    @Option(name: .customLong("logical-partitions"), help: "Coordinator with --etcd: logical partitions of the cluster placement when it is first created (default 64; fixed afterwards).") var logicalPartitions: Int?
    @Option(help: "Coordinator with --etcd and no cluster file: replicas per logical partition when the placement is first created (default 1).") var replication: Int?
    @Option(help: "Host other nodes and clients use to reach this node (default: --host, or the host name when --host is a wildcard).") var advertise: String?
    @Option(help: "Embedder: auto (default: minilm when its weights are installed, else hashing), minilm (local all-MiniLM-L6-v2), hashing (built in, lexical), openai (OpenAI-compatible /v1/embeddings) or ollama (/api/embed).") var embedder: String?
    @Option(name: .customLong("minilm-precision"), help: "MiniLM's linear layers: int8 (Ragd's own kernels; the default on CPUs with AVX-512 VNNI) or float32 (OpenBLAS, the reference; the default elsewhere).") var miniLMPrecision: String?
    @Option(name: .customLong("minilm-dir"), help: "all-MiniLM-L6-v2 files for --embedder minilm (default: where Scripts/fetch-minilm.sh installed them, see README).") var miniLMDir: String?
    @Option(name: .customLong("embedder-url"), help: "Embedding provider base URL.") var embedderURL: String?
    @Option(name: .customLong("embedder-model"), help: "Embedding model name.") var embedderModel: String?
    @Option(name: .customLong("embedder-api-key-env"), help: "Environment variable holding the embedding provider's API key.") var embedderKeyEnv: String?
    @Option(help: "Generator: extractive (built in, default), openai (/v1/chat/completions, streamed) or ollama (/api/chat).") var generator: String?
    @Option(name: .customLong("generator-url"), help: "Chat provider base URL.") var generatorURL: String?
    @Option(name: .customLong("generator-model"), help: "Chat model name.") var generatorModel: String?
    @Option(name: .customLong("generator-api-key-env"), help: "Environment variable holding the chat provider's API key.") var generatorKeyEnv: String?
    @Option(help: "Cross-encoder for rerank method cross-encoder: tei (POST /rerank) or cohere (POST /v1/rerank, also Jina).") var reranker: String?
    @Option(name: .customLong("reranker-url"), help: "Reranker base URL.") var rerankerURL: String?
    @Option(name: .customLong("reranker-model"), help: "Reranker model name.") var rerankerModel: String?
    @Option(name: .customLong("provider-timeout-ms"), help: "Timeout of one provider call (default 30000).") var providerTimeoutMS: Int?
    @Flag(name: .customLong("strict-generation"), help: "Fail queries when the chat provider fails, instead of answering extractively.") var strictGeneration = false
    @Option(help: "Query cache: on (default) or off.") var cache: String?
    @Option(name: .customLong("cache-l1-bytes"), help: "In-process cache budget in bytes (default 64 MiB).") var cacheL1Bytes: Int?
    @Option(name: .customLong("text-cache-bytes"), help: "Bytes of recently answered chunk texts kept in memory; partitions keep texts on disk (default 32 MiB; 0: none).") var textCacheBytes: Int?
    @Option(name: .customLong("cache-ttl"), help: "Seconds a cached answer lives (default 3600).") var cacheTTL: Int?
    @Option(name: .customLong("cache-l2"), help: "Second cache level: sqlite (default), redis or none.") var cacheL2: String?
    @Option(help: "Redis address host:port for --cache-l2 redis (default 127.0.0.1:6379).") var redis: String?
    @Option(name: .customLong("redis-timeout-ms"), help: "Redis timeout; slower is a cache miss (default 50).") var redisTimeoutMS: Int?
    @Option(name: .customLong("metrics-port"), help: "Prometheus /metrics port (default 9464; 0 = any free port; off disables).") var metricsPort: String?
    @Option(name: .customLong("shutdown-grace"), help: "Seconds calls in flight get to finish after SIGTERM (default 10).") var shutdownGrace: Int?
    @OptionGroup(title: "Jobs and indexing work") var work: WorkOptions
    @OptionGroup(title: "Limits") var limits: LimitOptions
    @OptionGroup(title: "Security") var security: SecurityOptions

    func setting(_ flag: String?, env: String, file: [String: Any], key: String) -> String? {
        if let flag { return flag }
        if let v = ProcessInfo.processInfo.environment[env], !v.isEmpty { return v }
        if let v = file[key] { return "\(v)" }
        return nil
    }

    func integer(_ flag: Int?, env: String, file: [String: Any], key: String, in range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let s = setting(flag.map(String.init), env: env, file: file, key: key) else { return nil }
        guard let n = Int(s) else { throw ValidationError("\(key) must be an integer, got \(s)") }
        if let range, !range.contains(n) { throw ValidationError("--\(key) must be \(range.lowerBound)...\(range.upperBound)") }
        return n
    }

    func run() async throws {
        var file: [String: Any] = [:]
        if let path = config {
            guard let data = FileManager.default.contents(atPath: path),
                  let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ValidationError("cannot read JSON object from \(path)")
            }
            file = object
        }
        var c = RagServerConfiguration()
        if let v = setting(host, env: "RAGD_HOST", file: file, key: "host") { c.host = v }
        if let v = try integer(port, env: "RAGD_PORT", file: file, key: "port") { c.port = v }
        if let v = setting(dataDir, env: "RAGD_DATA_DIR", file: file, key: "data-dir") { c.dataDirectory = v }
        if let v = try integer(partitions, env: "RAGD_PARTITIONS", file: file, key: "partitions") {
            guard (1...256).contains(v) else { throw ValidationError("partitions must be 1...256") }
            c.partitions = v
        }
        if let v = try integer(maxFrameSize, env: "RAGD_MAX_FRAME_SIZE", file: file, key: "max-frame-size") {
            guard v >= 1024 else { throw ValidationError("max-frame-size must be at least 1024") }
            c.maxFrameSize = v
        }
        if let v = setting(synchronous, env: "RAGD_SYNCHRONOUS", file: file, key: "synchronous") {
            guard let s = ["full": RagServerConfiguration.Synchronous.full, "normal": .normal][v.lowercased()] else {
                throw ValidationError("synchronous must be full or normal")
            }
            c.synchronous = s
        }
        if let v = setting(vectorIndex, env: "RAGD_VECTOR_INDEX", file: file, key: "vector-index") {
            guard let k = VectorIndexChoice(name: v) else { throw ValidationError(VectorIndexChoice.invalid("--vector-index")) }
            c.vectorIndex = k
        }
        if let v = try integer(autoHNSWThreshold, env: "RAGD_AUTO_HNSW_THRESHOLD", file: file, key: "auto-hnsw-threshold", in: 1...1_000_000_000) {
            c.autoHNSWThreshold = v
        }
        if let v = try integer(hnswSaveEvery, env: "RAGD_HNSW_SAVE_EVERY", file: file, key: "hnsw-save-every", in: 0...1_000_000_000) {
            c.hnswSaveEvery = v
        }
        if let v = try integer(hnswEf, env: "RAGD_HNSW_EF", file: file, key: "hnsw-ef", in: 1...10_000) { c.hnsw.ef = v }
        if let v = try integer(hnswM, env: "RAGD_HNSW_M", file: file, key: "hnsw-m", in: 2...128) { c.hnsw.m = v }
        if let v = try integer(hnswEfConstruction, env: "RAGD_HNSW_EF_CONSTRUCTION", file: file, key: "hnsw-ef-construction", in: 1...10_000) {
            c.hnsw.efConstruction = v
        }
        if let v = setting(hnswWalk, env: "RAGD_HNSW_WALK", file: file, key: "hnsw-walk") {
            guard ["int8", "float"].contains(v.lowercased()) else { throw ValidationError("--hnsw-walk must be int8 or float") }
            c.hnsw.quantized = v.lowercased() == "int8"
        }
        if let v = setting(role, env: "RAGD_ROLE", file: file, key: "role") {
            guard let r = RagServerConfiguration.Role(rawValue: v.lowercased()) else { throw ValidationError("role must be all, coordinator or shard") }
            c.role = r
        }
        if let path = setting(cluster, env: "RAGD_CLUSTER", file: file, key: "cluster") {
            do { c.cluster = try ClusterConfiguration.load(path) } catch { throw ValidationError(error.message) }
        }
        if let v = setting(etcd, env: "RAGD_ETCD", file: file, key: "etcd") {
            let endpoints = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            for e in endpoints where splitHostPort(e) == nil { throw ValidationError("--etcd takes host:port[,host:port…], got \(e)") }
            guard !endpoints.isEmpty else { throw ValidationError("--etcd takes host:port[,host:port…]") }
            c.etcdEndpoints = endpoints
        }
        if !c.etcdEndpoints.isEmpty, c.role == .all { throw ValidationError("--etcd is for --role coordinator or shard") }
        c.nodeID = setting(nodeID, env: "RAGD_NODE_ID", file: file, key: "node-id")
        c.advertiseHost = setting(advertise, env: "RAGD_ADVERTISE", file: file, key: "advertise")
        if let n = try integer(logicalPartitions, env: "RAGD_LOGICAL_PARTITIONS", file: file, key: "logical-partitions") {
            guard (1...4096).contains(n) else { throw ValidationError("--logical-partitions must be between 1 and 4096") }
            c.logicalPartitions = n
        }
        if let n = try integer(replicationLog, env: "RAGD_REPLICATION_LOG", file: file, key: "replication-log") {
            guard (1...10_000_000).contains(n) else { throw ValidationError("--replication-log must be between 1 and 10000000") }
            c.replicationLog.entries = n
        }
        if let n = try integer(replicationLogMB, env: "RAGD_REPLICATION_LOG_MB", file: file, key: "replication-log-mb") {
            guard (1...1_000_000).contains(n) else { throw ValidationError("--replication-log-mb must be between 1 and 1000000") }
            c.replicationLog.bytes = n << 20
        }
        if let s = antiEntropyInterval ?? setting(nil, env: "RAGD_ANTI_ENTROPY_INTERVAL", file: file, key: "anti-entropy-interval").flatMap(Double.init) {
            guard s >= 0, s <= 86_400 else { throw ValidationError("--anti-entropy-interval must be between 0 and 86400 seconds") }
            c.antiEntropyInterval = s == 0 ? nil : .milliseconds(Int(s * 1000))
        }
        if let n = try integer(replication, env: "RAGD_REPLICATION", file: file, key: "replication") {
            guard (1...16).contains(n) else { throw ValidationError("--replication must be between 1 and 16") }
            c.replication = n
        }
        if c.role == .coordinator, c.cluster == nil, c.etcdEndpoints.isEmpty { throw ValidationError("--role coordinator needs --cluster FILE or --etcd") }
        let timeoutMS = try integer(providerTimeoutMS, env: "RAGD_PROVIDER_TIMEOUT_MS", file: file, key: "provider-timeout-ms") ?? 30000
        func provider(_ kind: String?, _ url: String?, _ model: String?, _ keyEnv: String?, prefix: String, builtIn: String) throws -> RagServerConfiguration.Provider? {
            let k = setting(kind, env: "RAGD_\(prefix.uppercased())", file: file, key: prefix)?.lowercased() ?? builtIn
            guard k != builtIn else { return nil }
            guard let flavor = RagServerConfiguration.Provider.Flavor(rawValue: k) else { throw ValidationError("--\(prefix) must be \(builtIn), openai or ollama") }
            guard let u = setting(url, env: "RAGD_\(prefix.uppercased())_URL", file: file, key: "\(prefix)-url"),
                  let m = setting(model, env: "RAGD_\(prefix.uppercased())_MODEL", file: file, key: "\(prefix)-model") else {
                throw ValidationError("--\(prefix) \(k) needs --\(prefix)-url and --\(prefix)-model")
            }
            var p = RagServerConfiguration.Provider(flavor: flavor, url: u, model: m,
                                                    apiKeyEnvironment: setting(keyEnv, env: "RAGD_\(prefix.uppercased())_API_KEY_ENV", file: file, key: "\(prefix)-api-key-env"))
            p.timeout = .milliseconds(timeoutMS)
            return p
        }
        if let p = setting(miniLMPrecision, env: "RAGD_MINILM_PRECISION", file: file, key: "minilm-precision") {
            guard let v = MiniLMPrecision(rawValue: p.lowercased()) else { throw ValidationError("--minilm-precision must be int8 or float32") }
            c.miniLMPrecision = v
        }
        let directory = setting(miniLMDir, env: "RAGD_MINILM_DIR", file: file, key: "minilm-dir")
        switch setting(embedder, env: "RAGD_EMBEDDER", file: file, key: "embedder")?.lowercased() ?? "auto" {
        case "minilm":
            c.miniLMDirectory = try directory ?? MiniLMLocation.find()
            c.embedderChoice = "--embedder minilm"
        case "auto" where c.role != .shard:
            // The best offline pipeline this machine has: shard nodes never embed.
            if let found = try? directory ?? MiniLMLocation.find() {
                c.miniLMDirectory = found
                c.embedderChoice = "auto: MiniLM weights found in \(found)"
            } else {
                c.embedderChoice = "auto: no MiniLM weights (Scripts/fetch-minilm.sh installs them), so the lexical hashing embedder"
            }
        case "auto":
            break
        case let other:
            guard ["hashing", "openai", "ollama"].contains(other) else { throw ValidationError("--embedder must be auto, minilm, hashing, openai or ollama") }
            c.embeddingProvider = try provider(embedder, embedderURL, embedderModel, embedderKeyEnv, prefix: "embedder", builtIn: "hashing")
        }
        c.generationProvider = try provider(generator, generatorURL, generatorModel, generatorKeyEnv, prefix: "generator", builtIn: "extractive")
        if let flavor = setting(reranker, env: "RAGD_RERANKER", file: file, key: "reranker")?.lowercased() {
            guard ["tei", "cohere"].contains(flavor) else { throw ValidationError("--reranker must be tei or cohere") }
            guard let u = setting(rerankerURL, env: "RAGD_RERANKER_URL", file: file, key: "reranker-url") else { throw ValidationError("--reranker needs --reranker-url") }
            var p = RagServerConfiguration.Provider(flavor: .openai, url: u, model: setting(rerankerModel, env: "RAGD_RERANKER_MODEL", file: file, key: "reranker-model") ?? "")
            p.timeout = .milliseconds(timeoutMS)
            c.rerankProvider = p
            c.rerankFlavor = flavor
        }
        c.strictGeneration = strictGeneration || (ProcessInfo.processInfo.environment["RAGD_STRICT_GENERATION"] == "1")
        if let v = setting(cache, env: "RAGD_CACHE", file: file, key: "cache") {
            guard ["on", "off"].contains(v.lowercased()) else { throw ValidationError("cache must be on or off") }
            c.cache.enabled = v.lowercased() == "on"
        }
        if let v = try integer(cacheL1Bytes, env: "RAGD_CACHE_L1_BYTES", file: file, key: "cache-l1-bytes") { c.cache.l1Bytes = v }
        if let v = try integer(textCacheBytes, env: "RAGD_TEXT_CACHE_BYTES", file: file, key: "text-cache-bytes", in: 0...(1 << 40)) { c.textCacheBytes = v }
        if let v = try integer(cacheTTL, env: "RAGD_CACHE_TTL", file: file, key: "cache-ttl") {
            guard v > 0 else { throw ValidationError("cache-ttl must be positive") }
            c.cache.ttl = .seconds(v)
        }
        if let v = try integer(redisTimeoutMS, env: "RAGD_REDIS_TIMEOUT_MS", file: file, key: "redis-timeout-ms") { c.cache.l2Timeout = .milliseconds(v) }
        switch setting(cacheL2, env: "RAGD_CACHE_L2", file: file, key: "cache-l2")?.lowercased() {
        case nil, "sqlite": c.sharedCache = .sqlite
        case "none": c.sharedCache = .none
        case "redis":
            let (host, port) = try hostPort(setting(redis, env: "RAGD_REDIS", file: file, key: "redis") ?? "127.0.0.1:6379", key: "redis")
            c.sharedCache = .redis(host: host, port: port)
        case let other?: throw ValidationError("cache-l2 must be sqlite, redis or none, not \(other)")
        }
        if let v = setting(metricsPort, env: "RAGD_METRICS_PORT", file: file, key: "metrics-port") {
            if v.lowercased() == "off" { c.metricsPort = nil } else {
                guard let p = Int(v), (0...65535).contains(p) else { throw ValidationError("metrics-port must be a port number or off") }
                c.metricsPort = p
            }
        }
        if let v = try integer(shutdownGrace, env: "RAGD_SHUTDOWN_GRACE", file: file, key: "shutdown-grace") {
            guard v >= 0 else { throw ValidationError("shutdown-grace must be ≥ 0") }
            c.shutdownGracePeriod = .seconds(v)
        }
        try work.apply(to: &c, redisDefault: setting(redis, env: "RAGD_REDIS", file: file, key: "redis")) { setting($0, env: $1, file: file, key: $2) }
        try limits.apply(to: &c) { setting($0, env: $1, file: file, key: $2) }
        try await security.apply(to: &c) { setting($0, env: $1, file: file, key: $2) }
        let levelName = setting(logLevel, env: "RAGD_LOG_LEVEL", file: file, key: "log-level") ?? "info"
        guard let level = Logger.Level(rawValue: levelName.lowercased()) else { throw ValidationError("unknown log level \(levelName)") }
        let format = setting(logFormat, env: "RAGD_LOG_FORMAT", file: file, key: "log-format")?.lowercased() ?? "text"
        guard ["text", "json"].contains(format) else { throw ValidationError("--log-format must be text or json") }
        c.accessLog = accessLog || setting(nil, env: "RAGD_ACCESS_LOG", file: file, key: "access-log") == "1"
        LoggingSystem.bootstrap { label in
            if format == "json" { return JSONLogHandler(label: label, logLevel: level) }
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "ragd")
        // Before anything can make a span.
        var tracing: (any Service)?
        if let endpoint = setting(otelEndpoint, env: "RAGD_OTEL_ENDPOINT", file: file, key: "otel-endpoint") {
            let name = setting(otelServiceName, env: "RAGD_OTEL_SERVICE_NAME", file: file, key: "otel-service-name") ?? "ragd-\(c.role.rawValue)"
            tracing = try RagdTracing.bootstrap(endpoint: endpoint, serviceName: name, logger: logger)
        }
        // Connections and collections each take descriptors: use all the system allows.
        let descriptors = FileDescriptors.raiseSoftLimit()
        logger.info("file descriptor limit \(descriptors)")
        let configured = c
        let server = try await RagServer(configuration: configured, logger: logger) { listener in
            // Lines on stdout that scripts and tests read to learn the ports; the
            // public one comes last and means "ready".
            let line: String
            switch listener {
            case .internal(let a): line = "ragd internal listener on \(a.ipAddress ?? configured.host):\(a.port ?? 0)\n"
            case .public(let a): line = "ragd listening on \(a.ipAddress ?? configured.host):\(a.port ?? configured.port)\n"
            }
            FileHandle.standardOutput.write(Data(line.utf8))
        }
        let services: [any Service] = [server] + (tracing.map { [$0] } ?? [])
        let group = ServiceGroup(configuration: .init(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
