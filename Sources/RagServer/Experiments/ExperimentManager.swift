import Foundation
import RagCore
import RagEngine
import RagWire
import Synchronization

/// A/B experiments over retrieval configurations: definition, deterministic
/// assignment of users to variants, recording, feedback and analysis.
///
/// At most one experiment runs per collection; every query on that collection
/// takes part. A query without a user id, and every query once the experiment
/// is stopped, gets the control (the first variant).
public final class ExperimentManager: Sendable {
    let store: ExperimentStore
    private let experiments = Mutex<[String: Ragd_V1_Experiment]>([:])
    /// Coordinators sharing etcd keep the definitions there (`/ragd/experiments/`),
    /// so every one of them assigns users to the same variants.
    let shared: EtcdClient?
    static let prefix = "/ragd/experiments/"
    static let runningPrefix = "/ragd/experiments-running/"

    /// Lets go of `experiments.sqlite` (at shutdown).
    public func close() { store.close() }

    public init(path: String, etcd: EtcdClient? = nil) throws(RagError) {
        shared = etcd
        store = try ExperimentStore(path: path)
        var loaded: [String: Ragd_V1_Experiment] = [:]
        for row in try store.all() {
            guard var e = try? Ragd_V1_Experiment(serializedBytes: row.definition) else { continue }
            e.state = row.state
            e.createdAt = row.createdAt
            loaded[e.name] = e
        }
        experiments.withLock { $0 = loaded }
    }

    /// The variant for a user: FNV-1a 64 of `experiment ‖ 0x1F ‖ user`, mixed by
    /// MurmurHash3's fmix64, gives u = top 53 bits / 2^53 in [0, 1); the variant is
    /// the first whose cumulative ratio exceeds u. The same on every machine.
    public static func assign(experiment: Ragd_V1_Experiment, userID: String) -> Ragd_V1_Variant {
        guard !userID.isEmpty, experiment.state == "running" else { return experiment.variants[0] }
        let u = unitHash(experiment.name + "\u{1F}" + userID)
        var cumulative = 0.0
        for v in experiment.variants {
            cumulative += v.ratio
            if u < cumulative { return v }
        }
        return experiment.variants[experiment.variants.count - 1]
    }

    static func unitHash(_ s: String) -> Double {
        var h = StableHash.fnv1a(s)
        h ^= h >> 33
        h &*= 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h &*= 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return Double(h >> 11) / Double(UInt64(1) << 53)
    }

    public func create(_ e: Ragd_V1_Experiment) async throws(RagError) -> Ragd_V1_Experiment {
        let created = try Self.validated(e)
        guard let etcd = shared else { return try createLocally(created) }
        // One transaction: the name is new and nothing else runs on the collection.
        let ok = try await etcd.transaction(
            [.modRevision(Self.prefix + created.name, 0), .modRevision(Self.runningPrefix + created.collection, 0)],
            [.put(Self.prefix + created.name, try FrameCodec.bytes(created)), .put(Self.runningPrefix + created.collection, Data(created.name.utf8))])
        guard ok else {
            if try await etcd.get(Self.prefix + created.name) != nil { throw .init(.alreadyExists, "experiment \(created.name.debugDescription) already exists") }
            let other = try await etcd.get(Self.runningPrefix + created.collection).map { String(decoding: $0.value, as: UTF8.self) } ?? "another"
            throw .failedPrecondition("experiment \(other) is already running on \(created.collection); stop it first")
        }
        try? await refresh()
        return created
    }

    /// Reads the shared definitions (every second, and after a change here).
    public func refresh() async throws(RagError) {
        guard let etcd = shared else { return }
        var loaded: [String: Ragd_V1_Experiment] = [:]
        for kv in try await etcd.list(prefix: Self.prefix).kvs {
            guard let e = try? Ragd_V1_Experiment(serializedBytes: kv.value) else { continue }
            loaded[e.name] = e
        }
        experiments.withLock { $0 = loaded }
    }

    public func refreshLoop() async {
        guard shared != nil else { return }
        while !Task.isCancelled {
            try? await refresh()
            try? await Task.sleep(for: .seconds(1))
        }
    }

    func createLocally(_ created: Ragd_V1_Experiment) throws(RagError) -> Ragd_V1_Experiment {
        try experiments.withLock { (all) throws(RagError) in
            guard all[created.name] == nil else { throw .init(.alreadyExists, "experiment \(created.name.debugDescription) already exists") }
            if let other = all.values.first(where: { $0.collection == created.collection && $0.state == "running" }) {
                throw .failedPrecondition("experiment \(other.name) is already running on \(created.collection); stop it first")
            }
            try store.insert(name: created.name, collection: created.collection, definition: try FrameCodec.bytes(created), createdAt: created.createdAt)
            all[created.name] = created
        }
        return created
    }

    static func validated(_ e: Ragd_V1_Experiment) throws(RagError) -> Ragd_V1_Experiment {
        var e = e
        guard !e.name.isEmpty, e.name.utf8.count <= 128 else { throw .invalidArgument("an experiment needs a name (at most 128 bytes)") }
        try CollectionRegistry.validateName(e.collection)
        guard !e.variants.isEmpty else { throw .invalidArgument("experiment \(e.name) has no variants") }
        guard Set(e.variants.map(\.name)).count == e.variants.count, e.variants.allSatisfy({ !$0.name.isEmpty }) else {
            throw .invalidArgument("variant names must be non-empty and unique")
        }
        guard e.variants.allSatisfy({ $0.ratio >= 0 && $0.ratio.isFinite }) else { throw .invalidArgument("variant ratios must be non-negative") }
        let total = e.variants.map(\.ratio).reduce(0, +)
        guard abs(total - 1) <= 0.001 else { throw .invalidArgument("variant ratios sum to \(total); they must sum to 1.0 (± 0.001)") }
        for v in e.variants where v.config.hasChunking {
            let c = v.config.chunking
            guard !c.name.isEmpty, c.name.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) || $0 == 95 || $0 == 45 }) else {
                throw .invalidArgument("chunking profile names are lower-case letters, digits, _ and -")
            }
            _ = try Chunker(size: Int(c.chunkSize), overlap: Int(c.chunkOverlap))
            // The profile's own index is a collection too: its name must be valid
            // now, not fail every later Index into the collection.
            let index = Self.variantCollection(e.collection, profile: c.name)
            do { try CollectionRegistry.validateName(index) } catch {
                throw .invalidArgument("chunking profile \(c.name.debugDescription) of collection \(e.collection) needs an index named \(index.debugDescription), "
                                       + "longer than the 64-character limit for collection names: use a shorter profile name")
            }
        }
        e.state = "running"
        e.createdAt = Date().timeIntervalSince1970
        return e
    }

    public func stop(_ name: String) async throws(RagError) -> Ragd_V1_Experiment {
        if let etcd = shared {
            for _ in 0..<8 {
                guard let kv = try await etcd.get(Self.prefix + name), var e = try? Ragd_V1_Experiment(serializedBytes: kv.value) else {
                    throw .notFound("experiment \(name.debugDescription) does not exist")
                }
                guard e.state != "stopped" else { return e }
                e.state = "stopped"
                if try await etcd.transaction([.modRevision(kv.key, kv.modRevision)],
                                              [.put(kv.key, try FrameCodec.bytes(e)), .delete(Self.runningPrefix + e.collection)]) {
                    try? await refresh()
                    return e
                }
            }
            throw .init(.aborted, "experiment \(name.debugDescription) kept changing; try again")
        }
        return try experiments.withLock { (all) throws(RagError) -> Ragd_V1_Experiment in
            guard var e = all[name] else { throw .notFound("experiment \(name.debugDescription) does not exist") }
            try store.setState(name, "stopped")
            e.state = "stopped"
            all[name] = e
            return e
        }
    }

    public func list() -> [Ragd_V1_Experiment] {
        experiments.withLock { Array($0.values) }.sorted { ($0.createdAt, $0.name) < ($1.createdAt, $1.name) }
    }

    public func get(_ name: String) throws(RagError) -> Ragd_V1_Experiment {
        guard let e = experiments.withLock({ $0[name] }) else { throw .notFound("experiment \(name.debugDescription) does not exist") }
        return e
    }

    /// The experiment that decides a collection's queries and the user's variant:
    /// the running one, else the most recently stopped one (which serves its
    /// control to everyone). `running` says whether to record the query.
    public func current(on collection: String, userID: String) -> (Ragd_V1_Experiment, Ragd_V1_Variant, Bool)? {
        if let e = running(on: collection) { return (e, Self.assign(experiment: e, userID: userID), true) }
        guard let e = list().last(where: { $0.collection == collection }) else { return nil }
        return (e, e.variants[0], false)
    }

    /// The running experiment on a collection, if any.
    public func running(on collection: String) -> Ragd_V1_Experiment? {
        experiments.withLock { $0.values.first { $0.collection == collection && $0.state == "running" } }
    }

    /// Chunking profiles any experiment (running or stopped) defined on a
    /// collection: `Index` keeps one index per profile.
    public func chunkingProfiles(for collection: String) -> [Ragd_V1_ChunkingProfile] {
        var seen = Set<String>()
        return list().filter { $0.collection == collection }.flatMap(\.variants).compactMap { v in
            v.config.hasChunking && seen.insert(v.config.chunking.name).inserted ? v.config.chunking : nil
        }
    }

    /// The hidden collection that holds a collection's index for a chunking profile.
    public static func variantCollection(_ collection: String, profile: String) -> String { "\(collection).chunk-\(profile)" }

    public func record(_ r: ExperimentStore.Record) throws(RagError) { try store.record(r) }

    public func feedback(queryID: String, thumbsUp: Bool?, relevance: Double?) throws(RagError) -> (String, String) {
        guard let (experiment, variant) = try store.lookup(queryID: queryID) else {
            throw .notFound("query \(queryID.debugDescription) was not served under an experiment")
        }
        try store.feedback(queryID: queryID, thumbsUp: thumbsUp, relevance: relevance)
        return (experiment, variant)
    }
}

