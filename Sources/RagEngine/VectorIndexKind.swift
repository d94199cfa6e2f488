/// How a partition searches its vectors.
public enum VectorIndexKind: Sendable, Hashable {
    /// An exact scan of the float32 vectors.
    case flat
    /// A scan of int8 codes, the best candidates rescored exactly.
    case int8
    /// An HNSW graph (approximate); filtered queries it cannot serve well scan exactly.
    case hnsw(HNSWSettings)
}

/// The graph's parameters and the search breadth of a partition's HNSW index.
public struct HNSWSettings: Sendable, Hashable {
    /// Links per node (twice as many on the bottom layer).
    public var m = 16
    /// Candidates kept while linking a new node: higher builds slower and finds more.
    public var efConstruction = 100
    /// Candidates kept by a query (at least k): higher is slower and closer to exact.
    public var ef = 64
    /// A query walks int8 codes of the vectors (a quarter of the bytes per
    /// distance) and the `ef` nodes it keeps are rescored from the floats.
    public var quantized = false

    public init(m: Int = 16, efConstruction: Int = 100, ef: Int = 64, quantized: Bool = false) {
        self.m = m
        self.efConstruction = efConstruction
        self.ef = ef
        self.quantized = quantized
    }

    /// The graph's own parameters (what a saved graph must match).
    public var parameters: HNSWGraph.Parameters { .init(m: m, efConstruction: efConstruction, quantized: quantized) }
}

extension VectorIndexKind {
    /// The name a user gives this kind (`exact`, `int8`, `hnsw`).
    public var name: String {
        switch self {
        case .flat: "exact"
        case .int8: "int8"
        case .hnsw: "hnsw"
        }
    }
}

/// What a collection asks for: one kind of vector index for every partition,
/// or `auto`: the exact scan while a partition is small, HNSW once it is large.
public enum VectorIndexChoice: String, Sendable, CaseIterable {
    case exact, int8, hnsw, auto

    /// Parses a user's name for it; `flat` is an older name of `exact`.
    public init?(name: String) {
        let n = name.lowercased()
        self.init(rawValue: n == "flat" ? "exact" : n)
    }

    /// The message for a name `init(name:)` refused.
    public static func invalid(_ what: String) -> String { "\(what) must be exact, int8, hnsw or auto" }
}

/// How one partition's vector index is chosen: the collection's choice, the
/// graph's settings and, for `auto`, the size at which a partition gets a graph.
public struct VectorIndexPolicy: Sendable, Hashable {
    public var choice: VectorIndexChoice
    public var hnsw: HNSWSettings
    /// `auto`: partitions holding at least this many chunks use HNSW. Below it
    /// the exact scan costs about a millisecond of one core (5 ms per 100k
    /// vectors) and is exact, and indexing runs twice as fast without a graph.
    public var autoThreshold: Int
    /// A partition with a graph saves it in the background after this many
    /// chunks were written or deleted since its last save, or a quarter of its
    /// graph's nodes if that is more (`saveDue`; 0: only when it closes),
    /// bounding what a kill -9 leaves for the next start to redo.
    public var saveEvery: Int

    public static let defaultAutoThreshold = 20_000
    public static let defaultSaveEvery = 20_000

    public init(choice: VectorIndexChoice = .exact, hnsw: HNSWSettings = HNSWSettings(), autoThreshold: Int = Self.defaultAutoThreshold,
                saveEvery: Int = Self.defaultSaveEvery) {
        self.choice = choice
        self.hnsw = hnsw
        self.autoThreshold = autoThreshold
        self.saveEvery = saveEvery
    }

    /// Whether a graph of `nodes` nodes is saved after `changes` chunks written or
    /// deleted since its last save. A save writes the whole graph, so a fixed
    /// interval would write ever more as the graph grows (quadratic in its size:
    /// at 2.5M nodes, ~5 GB every 20,000 chunks); past `saveEvery`, the interval
    /// grows with the graph, so saves write at most ~5× the final graph in all,
    /// and a kill -9 leaves at most a quarter of it to redo.
    public func saveDue(changes: Int, nodes: Int) -> Bool {
        saveEvery > 0 && changes >= max(saveEvery, nodes / 4)
    }

    /// The index for a partition that holds `chunks` chunks.
    public func kind(chunks: Int) -> VectorIndexKind {
        switch choice {
        case .exact: .flat
        case .int8: .int8
        case .hnsw: .hnsw(hnsw)
        case .auto: chunks >= autoThreshold ? .hnsw(hnsw) : .flat
        }
    }
}
