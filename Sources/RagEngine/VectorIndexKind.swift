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

    public init(m: Int = 16, efConstruction: Int = 100, ef: Int = 64) {
        self.m = m
        self.efConstruction = efConstruction
        self.ef = ef
    }
}
