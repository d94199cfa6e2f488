import Foundation
import RagClient
import RagEngine
import RagCore
import RagStore

/// Everything a server needs to start, in one value. `ragd` fills it from
/// flags, `RAGD_*` environment variables and an optional config file.
public struct RagServerConfiguration: Sendable {
    /// Address to listen on. Port 0 picks a free port (see `RagServer.onListening`).
    public var host: String = "127.0.0.1"
    public var port: Int = 7878
    /// TLS on the public listener (`--tls-cert`, `--tls-key`; `--tls-client-ca` makes it mutual).
    public var tls: ServerTLS?
    /// Require an API key on every call even while no key exists (ragd sets
    /// this when it listens beyond loopback). Once a key exists, keys are
    /// required anyway.
    public var requireKeys = false
    /// The internal listener of a shard node: the only place shard RPCs are
    /// served, with mutual TLS against the cluster's CA (`tls` nil only with --insecure).
    public struct InternalListener: Sendable, Hashable {
        public var host: String
        public var port: Int
        public var tls: ServerTLS?
        public init(host: String, port: Int, tls: ServerTLS?) {
            self.host = host
            self.port = port
            self.tls = tls
        }
    }
    public var internalListener: InternalListener?
    /// The certificate a coordinator presents to its shards' internal listeners,
    /// and the cluster CA it verifies them with.
    public var clusterTLS: ClientTLS?
    /// Where the catalog and partition databases live.
    public var dataDirectory: String = "./ragd-data"
    /// Partitions per new collection (fixed for a collection's lifetime).
    public var partitions: Int = 4
    /// How a collection that names no `index` searches its vectors: `exact`
    /// (a scan of float32), `int8` (a scan of int8 codes, four times fewer
    /// bytes, the best candidates rescored exactly from float32), `hnsw` (an
    /// HNSW graph per partition: approximate; `hnsw` holds its settings) or
    /// `auto` (exact while a partition holds fewer than `autoHNSWThreshold`
    /// chunks, HNSW from there). Recall: `ragctl bench --search-only`.
    public var vectorIndex: VectorIndexChoice = .exact
    public var hnsw = HNSWSettings()
    public var autoHNSWThreshold = VectorIndexPolicy.defaultAutoThreshold
    /// Chunks written or deleted in a partition between background saves of its graph (0: only at stop).
    public var hnswSaveEvery = VectorIndexPolicy.defaultSaveEvery

    /// How the partitions of a collection whose catalog entry names `index`
    /// ("" or unknown: this server's `vectorIndex`) build their vector index.
    public func vectorIndexPolicy(_ index: String) -> VectorIndexPolicy {
        VectorIndexPolicy(choice: VectorIndexChoice(name: index) ?? vectorIndex, hnsw: hnsw, autoThreshold: autoHNSWThreshold,
                          saveEvery: hnswSaveEvery)
    }

    /// One info log line per finished call (request id, method, status, duration).
    public var accessLog = false
    /// Largest frame accepted, in bytes; a longer length prefix closes the connection.
    public var maxFrameSize: Int = 16 * 1024 * 1024
    /// Connections, timeouts, calls in flight and buffered bytes (see `ConnectionLimits`).
    public var limits = ConnectionLimits()
    public var defaultTopK: Int = 5
    public var maxTopK: Int = 1000
    /// Sizes of documents, metadata and filters a request may carry.
    public var requests = RequestLimits()
    /// Documents per `Index` call (larger batches: RESOURCE_EXHAUSTED).
    public var maxDocumentsPerCall: Int {
        get { requests.maxDocumentsPerCall }
        set { requests.maxDocumentsPerCall = newValue }
    }
    /// Vector dimension of the built-in hashing embedder.
    public var embeddingDimension: Int = 384
    public var synchronous: PartitionStore.Synchronous = .full
    /// The replication log a shard node keeps per partition behind the newest
    /// entry, for replicas that catch up (those further behind are copied).
    public var replicationLog = LogRetention()
    /// Coordinators (the mover): how often in-sync replicas are compared with
    /// their primary and repaired (nil: never).
    public var antiEntropyInterval: Duration? = .seconds(10)
    /// How long a graceful shutdown waits for in-flight calls.
    public var shutdownGracePeriod: Duration = .seconds(10)
    /// Chunks embedded per embedder call while indexing.
    public var embedBatchSize: Int = 64
    /// Bytes of recently answered chunk texts kept in memory (`ChunkTextCache`; 0: none).
    public var textCacheBytes = 32 * 1024 * 1024
    /// Embedding batches that may run at once for indexing, across partitions
    /// and calls (the "embed-index" lane); the default is the number of cores.
    public var indexEmbedWorkers = ProcessInfo.processInfo.activeProcessorCount
    /// Query embeddings that may run at once (the "embed-query" lane, separate,
    /// so that indexing never delays a query's embedding).
    public var queryEmbedWorkers = ProcessInfo.processInfo.activeProcessorCount

    /// Where the second cache level lives.
    public enum SharedCacheBackend: Sendable, Hashable {
        case none
        /// `cache.sqlite` in the data directory (the default: survives restarts).
        case sqlite
        /// A Redis server shared by several coordinators.
        case redis(host: String, port: Int)
    }

    /// The query cache (L1 in-process LRU + L2). `no_cache` on a request skips it.
    public var cache = QueryCache.Settings()
    public var sharedCache: SharedCacheBackend = .sqlite
    /// A model provider reached over HTTP.
    public struct Provider: Sendable, Hashable {
        public typealias Flavor = ProviderFlavor
        public var flavor: Flavor
        public var url: String
        public var model: String
        /// Name of the environment variable holding the API key (the key itself is never stored).
        public var apiKeyEnvironment: String?
        public var timeout: Duration = .seconds(30)
        public var retries = 3

        public init(flavor: Flavor, url: String, model: String, apiKeyEnvironment: String? = nil) {
            self.flavor = flavor
            self.url = url
            self.model = model
            self.apiKeyEnvironment = apiKeyEnvironment
        }

        public var http: ProviderHTTP { ProviderHTTP(baseURL: url, apiKeyEnvironment: apiKeyEnvironment, timeout: timeout, retries: retries) }
    }

    /// Directory of the local all-MiniLM-L6-v2 model (vocab.txt, model.safetensors):
    /// when set, the in-process neural embedder replaces the hashing one.
    public var miniLMDirectory: String?
    /// int8 or float32 linear layers for MiniLM (nil: `MiniLMPrecision.preferred`).
    public var miniLMPrecision: MiniLMPrecision?
    /// Why this embedder was chosen, for the start-up log (set by the edge).
    public var embedderChoice: String?
    /// Embeddings from a provider instead of the built-in hashing embedder.
    public var embeddingProvider: Provider?
    /// Answers from a chat model instead of the extractive generator.
    public var generationProvider: Provider?
    /// A cross-encoder for `rerank: cross-encoder` (flavor tei or cohere, see HTTPReranker).
    public var rerankProvider: Provider?
    public var rerankFlavor: String = "tei"
    /// When the chat model fails: error out (true) or answer extractively and say so (false).
    public var strictGeneration = false

    /// Asynchronous jobs: worker counts, retries and backoff.
    public var jobs = JobRunner.Settings()
    /// Where jobs wait: `jobs.sqlite` in the data directory (one server), or
    /// Redis Streams shared by several coordinators acting as workers.
    public enum JobBackend: Sendable, Hashable {
        case sqlite
        case redis(host: String, port: Int)
    }
    public var jobBackend: JobBackend = .sqlite

    /// What this process does: everything (`all`), only the public RPCs over remote
    /// shards (`coordinator`, needs `cluster`), or only host partitions (`shard`).
    public enum Role: String, Sendable, CaseIterable { case all, coordinator, shard }
    public var role: Role = .all
    public var cluster: ClusterConfiguration?
    /// etcd endpoints (host:port, its client port): coordinators keep the cluster
    /// layout, the collection catalog and the write generations there, so any
    /// number of them serve the same cluster.
    public var etcdEndpoints: [String] = []
    /// This node's id in etcd's membership (default: host name and public port).
    public var nodeID: String?
    /// Logical partitions of a cluster placement created in etcd (fixed from then on).
    public var logicalPartitions: Int = Placement.defaultPartitions
    /// Replicas per logical partition of a placement created empty (no cluster file).
    public var replication: Int = 1
    /// The host other nodes use to reach this one (default: the listening host,
    /// or the host name when listening on a wildcard address).
    public var advertiseHost: String?

    /// Prometheus `/metrics` port; nil disables the endpoint, 0 picks a free port.
    public var metricsPort: Int? = 9464
    public var metricsHost: String = "127.0.0.1"

    public init() {}
}
extension RagServerConfiguration {
    /// SQLite durability of partition writes (see README, "Storage and durability").
    public typealias Synchronous = PartitionStore.Synchronous
}
