import Foundation
import Synchronization
import RagCore
import RagEngine
import RagStore

/// A collection and the shards that hold its partitions.
public struct CollectionHandle: Sendable {
    public var info: CollectionInfo
    public var shards: [any Shard]
}

/// Opens, creates and finds collections. An actor so that two `Index` calls
/// racing to create the same collection create it once.
public actor CollectionRegistry {
    /// Makes the shard for partition `p` of a collection: a `LocalShard` on a
    /// single node, a `RemoteShard` on a coordinator.
    public typealias ShardFactory = @Sendable (CollectionInfo, Int) throws -> any Shard

    let configuration: RagServerConfiguration
    let catalog: any CollectionCatalog
    let makeShard: ShardFactory
    /// Partitions of a new collection (a coordinator: the cluster's shard count).
    let partitionsForNew: Int
    var collections: [String: CollectionHandle] = [:]
    /// Storages being built by reindex jobs, by collection name (see `CollectionInfo.building`).
    var builds: [String: CollectionHandle] = [:]
    /// Names a shared catalog said do not exist, and when: asked again within a
    /// second, they are NOT_FOUND without a round trip, so calls naming random
    /// collections cannot turn into a flood of etcd reads. Bounded.
    private var missing: [String: ContinuousClock.Instant] = [:]
    static let missingTTL = Duration.seconds(1)
    static let missingLimit = 4096

    /// Opens the catalog (`catalog.sqlite` unless another is given) and every
    /// collection in it (loading their vectors).
    public init(configuration: RagServerConfiguration, partitions: Int? = nil, catalog shared: (any CollectionCatalog)? = nil,
                makeShard: ShardFactory? = nil) async throws(RagError) {
        self.configuration = configuration
        self.partitionsForNew = partitions ?? configuration.partitions
        let makeShard = makeShard ?? { info, p in
            let path = String(format: "%@/collections/%@/p%03d.sqlite", configuration.dataDirectory, info.storage, p)
            return try LocalShard(path: path, partition: p, dimension: info.dimension, synchronous: configuration.synchronous,
                                   vectorIndex: configuration.vectorIndexPolicy(info.index))
        }
        self.makeShard = makeShard
        let catalog: any CollectionCatalog
        if let shared { catalog = shared } else { catalog = try Catalog(path: configuration.dataDirectory + "/catalog.sqlite") }
        self.catalog = catalog
        var opened: [String: CollectionHandle] = [:]
        var building: [String: CollectionHandle] = [:]
        for info in try await catalog.all() {
            opened[info.name] = try Self.open(info, makeShard: makeShard)
            if let b = info.building { building[info.name] = try Self.open(Self.target(info, b), makeShard: makeShard) }
        }
        collections = opened
        builds = building
    }

    /// Opens every partition, loading them in parallel (start-up is dominated by
    /// reading vectors and rebuilding BM25 postings).
    static func open(_ info: CollectionInfo, makeShard: ShardFactory) throws(RagError) -> CollectionHandle {
        let results = Mutex([Int: Result<any Shard, RagError>]())
        DispatchQueue.concurrentPerform(iterations: info.partitions) { p in
            let r = Result { () throws(RagError) in
                do { return try makeShard(info, p) } catch { throw RagError(from: error) }
            }
            results.withLock { $0[p] = r }
        }
        let opened = results.withLock { $0 }
        var shards: [any Shard] = []
        for p in 0..<info.partitions { shards.append(try opened[p]!.get()) }
        return CollectionHandle(info: info, shards: shards)
    }

    /// A storage name as shard nodes receive it: a collection's name, or one
    /// that a reindex built (`<name>~r<n>`, which no collection name can be).
    public static func validateStorage(_ storage: String) throws(RagError) {
        if let tilde = storage.lastIndex(of: "~") {
            let suffix = storage[storage.index(after: tilde)...]
            guard suffix.first == "r", suffix.count > 1, suffix.dropFirst().allSatisfy(\.isASCII), UInt32(suffix.dropFirst()) != nil else {
                throw .invalidArgument("storage name \(storage.debugDescription) is not <collection>~r<number>")
            }
            try validateName(String(storage[..<tilde]))
            return
        }
        try validateName(storage)
    }

    /// 1 to `maxBytes` of A-Z a-z 0-9 _ - . not starting with '.': safe as a
    /// file name (collections, their storages, snapshots).
    static func isSafeName(_ name: String, maxBytes: Int) -> Bool {
        !name.isEmpty && name.utf8.count <= maxBytes && name.first != "."
            && name.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 95 || $0 == 45 || $0 == 46 }
    }

    public static func validateName(_ name: String) throws(RagError) {
        guard !name.isEmpty else { throw .invalidArgument("collection name must not be empty") }
        guard isSafeName(name, maxBytes: 64) else {
            throw .invalidArgument("collection name \(name.debugDescription) must be 1-64 characters of A-Z a-z 0-9 _ - . and not start with '.'")
        }
    }

    /// The collection, or NOT_FOUND. With a shared catalog, a collection another
    /// coordinator created is found there and opened here.
    public func get(_ name: String) async throws(RagError) -> CollectionHandle {
        if let c = collections[name] { return c }
        if catalog.isShared, (try? Self.validateName(name)) != nil {
            if let seen = missing[name], ContinuousClock.now - seen < Self.missingTTL {
                throw .notFound("collection \(name.debugDescription) does not exist")
            }
            if let info = try await catalog.find(name) {
                missing[name] = nil
                return try adopt(info)
            }
            if missing.count >= Self.missingLimit { missing.removeAll(keepingCapacity: true) }
            missing[name] = .now
        }
        throw .notFound("collection \(name.debugDescription) does not exist")
    }

    /// The collection, created if it does not exist. `index` (a checked
    /// `VectorIndexChoice` name, or "": the server's) is what a new collection
    /// builds; naming another than an existing collection's is FAILED_PRECONDITION.
    public func getOrCreate(_ name: String, embedder: any Embedder, index: String = "") async throws(RagError) -> CollectionHandle {
        if let c = collections[name] { return try Self.matching(c, index: index) }
        try Self.validateName(name)
        // Each partition holds a SQLite database with its WAL and shared memory.
        try FileDescriptors.require(partitionsForNew * 4 + 8, for: "collection \(name)")
        let info = CollectionInfo(name: name, embedder: embedder.id, dimension: embedder.dimension, partitions: partitionsForNew, index: index)
        guard catalog.isShared else {
            let handle = try Self.open(info, makeShard: makeShard)
            // Registered before the catalog call suspends this actor: a second
            // Index racing to create the same collection finds it instead of
            // opening it twice and failing on the catalog's unique name.
            collections[name] = handle
            do { _ = try await catalog.create(info) } catch {
                collections[name] = nil
                throw error
            }
            return handle
        }
        // Shared: whoever creates it first decides its embedder, partitions and index.
        missing[name] = nil
        return try Self.matching(try adopt(try await catalog.create(info)), index: index)
    }

    /// `c`, unless the caller named an index kind other than the one it has.
    static func matching(_ c: CollectionHandle, index: String) throws(RagError) -> CollectionHandle {
        guard !index.isEmpty, index != c.info.index else { return c }
        throw .failedPrecondition("collection \(c.info.name) has index \(c.info.index.isEmpty ? "(the server's default)" : c.info.index), not \(index); "
            + "ragctl reindex -c \(c.info.name) --index \(index) rebuilds it with another")
    }

    /// Opens a collection known to the shared catalog (once, however many calls race here).
    func adopt(_ info: CollectionInfo) throws(RagError) -> CollectionHandle {
        if let c = collections[info.name] { return c }
        let handle = try Self.open(info, makeShard: makeShard)
        collections[info.name] = handle
        return handle
    }

    /// Every collection: with a shared catalog, also those created elsewhere
    /// (a catalog that cannot be read leaves the ones known here).
    public func all() async -> [CollectionHandle] {
        if catalog.isShared, let infos = try? await catalog.all() {
            for info in infos where collections[info.name] == nil { _ = try? adopt(info) }
        }
        return collections.values.sorted { $0.info.name < $1.info.name }
    }

    /// Records a write, so caches keyed on the generation never serve an older answer.
    public func bumpGeneration(_ name: String) async throws(RagError) {
        try await catalog.bumpGeneration(name)
        collections[name]?.info.generation += 1
    }

    public func close() async {
        for c in collections.values { for s in c.shards { await s.close() } }
        await catalog.close()
    }
}
