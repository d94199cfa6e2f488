import CRagKernels
import Foundation

/// A hierarchical navigable small-world graph (Malkov & Yashunin, 2016) over
/// the inner product of normalised vectors: approximate top-k in far fewer
/// distance computations than an exact scan.
///
/// - Inserts are incremental. A node's level comes from a hash of its id and
///   the seed, and ties between equal scores go to the lower id, so the same
///   inserts in the same order make the same graph, and the same query on the
///   same graph gives the same ids every time.
/// - Deletes are tombstones. A deleted node still routes searches but is never
///   returned; `compacted()` rebuilds the graph without them.
/// - A filter is applied while searching: nodes it rejects are walked through
///   but not collected, and the search goes on until it holds k admitted nodes
///   or has seen every node it can reach. With a selective filter (few nodes
///   admitted) an exact scan of the admitted nodes is cheaper and is used.
///
/// Searches may run side by side on several threads; a write (add, remove,
/// compaction) must run alone.
public final class HNSWGraph {
    public struct Parameters: Sendable, Hashable {
        /// Links per node on the upper layers (twice as many on layer 0).
        public var m: Int
        /// Candidates kept while linking a new node.
        public var efConstruction: Int
        public var seed: UInt64
        /// Searches walk int8 codes of the vectors (a quarter of the bytes per
        /// distance) and rescore the `ef` nodes they keep from the floats. The
        /// graph itself is built from the floats either way.
        public var quantized: Bool

        public init(m: Int = 16, efConstruction: Int = 200, seed: UInt64 = 0x5EED, quantized: Bool = false) {
            self.m = max(2, m)
            self.efConstruction = max(1, efConstruction)
            self.seed = seed
            self.quantized = quantized
        }
    }

    public let dimension: Int
    public let parameters: Parameters
    let m0: Int
    let levelScale: Double

    /// The float vectors, row `i` for node `i` (in memory or a mapped file).
    let vectors: VectorRows
    /// With `parameters.quantized`: every node's int8 code, row `i` for node `i`.
    var codes: ScalarQuantizer?
    var levels: [UInt8] = []
    /// Layer 0: per node, a count then up to `m0` neighbours.
    var links0: [Int32] = []
    /// Layers 1...level: per node, `level` blocks of a count then up to `m` neighbours.
    var upper: [[Int32]] = []
    var deleted: [Bool] = []
    /// Visited marks, one set per walk in progress: searches run side by side.
    let visitedPool = VisitedPool()
    var entry: Int32 = -1
    var maxLevel = -1
    public internal(set) var deletedCount = 0

    /// Below this share of admitted nodes (or this many), a filtered search scans them exactly.
    public static let exactScanShare = 0.05
    public static let exactScanNodes = 2_000
    /// How much of each neighbour's vector to prefetch (the first cache lines; the rest streams).
    private var prefetchBytes: Int { min(dimension * 4, 256) }

    public init(dimension: Int, parameters: Parameters = Parameters(), backing: VectorBacking = .memory) {
        self.dimension = dimension
        self.parameters = parameters
        vectors = VectorRows(dimension: dimension, backing: backing)
        m0 = 2 * parameters.m
        levelScale = 1 / log(Double(parameters.m))
        if parameters.quantized { codes = ScalarQuantizer(dimension: dimension) }
    }

    /// A graph over rows that exist already (`decode` of a graph whose vectors were kept outside).
    init(dimension: Int, parameters: Parameters, rows: VectorRows) {
        self.dimension = dimension
        self.parameters = parameters
        vectors = rows
        m0 = 2 * parameters.m
        levelScale = 1 / log(Double(parameters.m))
    }

    public var count: Int { levels.count }
    public var liveCount: Int { count - deletedCount }

    public func isDeleted(_ id: Int32) -> Bool { deleted[Int(id)] }

    /// Node `id`'s vector.
    public func vector(_ id: Int32) -> [Float] { Array(UnsafeBufferPointer(start: vectors.row(Int(id)), count: dimension)) }

    /// Whether node `id`'s vector is `v` (without copying the row).
    public func vector(_ id: Int32, equals v: [Float]) -> Bool {
        v.count == dimension && UnsafeBufferPointer(start: vectors.row(Int(id)), count: dimension).elementsEqual(v)
    }

    /// Where the float vectors are.
    public var backing: VectorBacking { vectors.backing }

    // MARK: writes

    /// Adds a vector (normalised by the caller); returns its id (ids count up from 0).
    @discardableResult
    public func add(_ vector: [Float]) -> Int32 {
        precondition(vector.count == dimension, "vector dimension mismatch")
        let id = Int32(count)
        let level = randomLevel(id)
        vector.withUnsafeBufferPointer { vectors.append($0) }
        if codes != nil {
            codes!.grow(toRows: Int(id) + 1)
            let fits = vector.withUnsafeBufferPointer { codes!.set(row: Int(id), $0) }
            if !fits { vectors.withContiguousFloats { codes!.rebuild($0, rows: Int(id) + 1) } }
        }
        levels.append(UInt8(level))
        links0.append(contentsOf: repeatElement(0, count: m0 + 1))
        upper.append(Array(repeating: 0, count: level * (parameters.m + 1)))
        deleted.append(false)
        guard entry >= 0 else {
            entry = id
            maxLevel = level
            return id
        }
        do {
            let v = vectors.row(0)
            let q = v + Int(id) * dimension
            let scorer = FloatScorer(q: q, v: v, dimension: dimension, bytes: prefetchBytes)
            var ep = Scored(score: scorer.score(entry), id: entry)
            var layer = maxLevel
            while layer > level {
                ep = greedy(scorer, from: ep, layer: layer)
                layer -= 1
            }
            var entries = [ep]
            for l in stride(from: min(level, maxLevel), through: 0, by: -1) {
                let found = searchLayer(scorer, entries: entries, ef: parameters.efConstruction, layer: l, admit: nil).sorted(by: Scored.before)
                let chosen = selectNeighbours(found, max: parameters.m, v)
                setLinks(id, l, chosen)
                for n in chosen { connect(n, to: id, layer: l, v) }
                entries = found
            }
        }
        if level > maxLevel {
            maxLevel = level
            entry = id
        }
        return id
    }

    /// Marks a node deleted: never returned again, still walked through.
    public func remove(_ id: Int32) {
        guard !deleted[Int(id)] else { return }
        deleted[Int(id)] = true
        deletedCount += 1
    }

    /// The graph rebuilt from the live nodes, in id order, and each old id's
    /// new one (nil: deleted).
    public func compacted() -> (HNSWGraph, [Int32?]) {
        let graph = HNSWGraph(dimension: dimension, parameters: parameters, backing: vectors.backing)
        var map = [Int32?](repeating: nil, count: count)
        for i in 0..<count where !deleted[i] {
            map[i] = graph.add(vector(Int32(i)))
        }
        return (graph, map)
    }

    // MARK: search

    /// The `k` best live nodes for `query` (normalised), best first. `ef`
    /// (at least k) is how many candidates the bottom layer keeps: higher is
    /// slower and closer to exact. `filter` admits node ids; `admitted`, when
    /// known, is how many nodes it admits (a selective filter scans them exactly).
    public func search(_ query: [Float], k: Int, ef: Int, filter: ((Int32) -> Bool)? = nil, admitted: Int? = nil) -> [Scored] {
        search(query, k: k, ef: ef, filter: filter, admitted: admitted, codes: codes)
    }

    /// The float walk, also on a quantized graph: for benchmarks and tests that
    /// compare both walks on one graph.
    public func searchFloats(_ query: [Float], k: Int, ef: Int, filter: ((Int32) -> Bool)? = nil, admitted: Int? = nil) -> [Scored] {
        search(query, k: k, ef: ef, filter: filter, admitted: admitted, codes: nil)
    }

    private func search(_ query: [Float], k: Int, ef: Int, filter: ((Int32) -> Bool)?, admitted: Int?, codes: ScalarQuantizer?) -> [Scored] {
        precondition(query.count == dimension, "query dimension mismatch")
        guard k > 0, entry >= 0 else { return [] }
        if filter != nil, let admitted, admitted <= max(Self.exactScanNodes, Int(Double(count) * Self.exactScanShare)) {
            return exactSearch(query, k: k, filter: filter)
        }
        let deleted = self.deleted
        let admit: ((Int32) -> Bool)? = filter == nil && deletedCount == 0 ? nil : { id in !deleted[Int(id)] && (filter?(id) ?? true) }
        let v = vectors.row(0)
        guard let codes else {
            let found = query.withUnsafeBufferPointer { q in
                walkDown(FloatScorer(q: q.baseAddress!, v: v, dimension: dimension, bytes: prefetchBytes), ef: max(ef, k), admit: admit)
            }
            return Array(found.sorted(by: Scored.before).prefix(k))
        }
        // Walk the codes, then rank the best the walk kept by exact scores.
        let scaled = codes.scaled(query)
        let found = codes.withCodes { c in
            scaled.withUnsafeBufferPointer { s in
                walkDown(CodeScorer(q: s.baseAddress!, codes: c, dimension: dimension), ef: max(ef, k), admit: admit)
            }
        }
        let exact = query.withUnsafeBufferPointer { q in
            found.sorted(by: Scored.before).prefix(Self.rescored(k: k)).map {
                Scored(score: VectorMath.dot(q.baseAddress!, vectors.row(Int($0.id)), dimension), id: $0.id)
            }
        }
        return Array(exact.sorted(by: Scored.before).prefix(k))
    }

    /// How many of an int8 walk's best nodes are rescored from the floats: each
    /// may cost a read from disk when the floats are in a mapped file, and an
    /// int8 score is close enough that the true top k are among the best 4k.
    static func rescored(k: Int) -> Int { max(4 * k, 40) }

    /// From the entry point down the upper layers greedily, then the best `ef` of layer 0.
    private func walkDown<S: NodeScorer>(_ scorer: S, ef: Int, admit: ((Int32) -> Bool)?) -> [Scored] {
        var ep = Scored(score: scorer.score(entry), id: entry)
        var layer = maxLevel
        while layer > 0 {
            ep = greedy(scorer, from: ep, layer: layer)
            layer -= 1
        }
        return searchLayer(scorer, entries: [ep], ef: ef, layer: 0, admit: admit)
    }

    /// The exact top `k` of the live nodes `filter` admits (a full scan).
    public func exactSearch(_ query: [Float], k: Int, filter: ((Int32) -> Bool)? = nil) -> [Scored] {
        var top = TopK<Int32>(k: k)  // ties to the lower id, as `Scored.before`
        query.withUnsafeBufferPointer { qb in
            for i in 0..<count where !deleted[i] && (filter?(Int32(i)) ?? true) {
                top.insert(score: Double(VectorMath.dot(qb.baseAddress!, vectors.row(i), dimension)), key: Int32(i))
            }
        }
        return top.sorted().map { Scored(score: Float($0.score), id: $0.key) }
    }

    // MARK: internals

    private func randomLevel(_ id: Int32) -> Int {
        var h = SplitMix64(seed: parameters.seed ^ (UInt64(UInt32(bitPattern: id)) &* 0x9E37_79B9_7F4A_7C15))
        let u = Double(h.next() >> 11 | 1) * 0x1p-53  // (0, 1)
        return min(15, Int(-log(u) * levelScale))
    }

    /// Neighbours of `id` on `layer`, through `body`.
    @inline(__always)
    private func withLinks<T>(_ id: Int32, _ layer: Int, _ body: (UnsafeBufferPointer<Int32>) -> T) -> T {
        if layer == 0 {
            return links0.withUnsafeBufferPointer { b in
                let base = Int(id) * (m0 + 1)
                return body(UnsafeBufferPointer(rebasing: b[base + 1..<base + 1 + Int(b[base])]))
            }
        }
        return upper[Int(id)].withUnsafeBufferPointer { b in
            let base = (layer - 1) * (parameters.m + 1)
            return body(UnsafeBufferPointer(rebasing: b[base + 1..<base + 1 + Int(b[base])]))
        }
    }

    private func setLinks(_ id: Int32, _ layer: Int, _ ids: [Int32]) {
        if layer == 0 {
            let base = Int(id) * (m0 + 1)
            links0[base] = Int32(ids.count)
            for (i, n) in ids.enumerated() { links0[base + 1 + i] = n }
        } else {
            let base = (layer - 1) * (parameters.m + 1)
            upper[Int(id)][base] = Int32(ids.count)
            for (i, n) in ids.enumerated() { upper[Int(id)][base + 1 + i] = n }
        }
    }

    /// Adds `new` to `node`'s links; when full, keeps the best by the heuristic.
    private func connect(_ node: Int32, to new: Int32, layer: Int, _ v: UnsafePointer<Float>) {
        let cap = layer == 0 ? m0 : parameters.m
        var current = withLinks(node, layer) { Array($0) }
        guard !current.contains(new) else { return }
        if current.count < cap {
            current.append(new)
            return setLinks(node, layer, current)
        }
        let p = v + Int(node) * dimension
        let scored = (current + [new]).map { Scored(score: VectorMath.dot(p, v + Int($0) * dimension, dimension), id: $0) }.sorted(by: Scored.before)
        setLinks(node, layer, selectNeighbours(scored, max: cap, v))
    }

    /// The heuristic of the paper (and hnswlib): a candidate is kept unless it
    /// is closer to one already kept than to the query, which keeps links that
    /// point in different directions. `sorted` is best first.
    private func selectNeighbours(_ sorted: [Scored], max: Int, _ v: UnsafePointer<Float>) -> [Int32] {
        guard sorted.count > max else { return sorted.map(\.id) }
        var kept: [Int32] = []
        for c in sorted {
            let p = v + Int(c.id) * dimension
            if kept.allSatisfy({ VectorMath.dot(p, v + Int($0) * dimension, dimension) < c.score }) {
                kept.append(c.id)
                if kept.count == max { break }
            }
        }
        return kept
    }

    private func greedy<S: NodeScorer>(_ scorer: S, from start: Scored, layer: Int) -> Scored {
        var best = start
        var moved = true
        while moved {
            moved = false
            withLinks(best.id, layer) { links in
                for n in links {
                    let s = Scored(score: scorer.score(n), id: n)
                    if Scored.before(s, best) {
                        best = s
                        moved = true
                    }
                }
            }
        }
        return best
    }

    /// The best `ef` nodes of `layer` reachable from `entries` that `admit`
    /// accepts (all when nil); nodes it rejects are walked through.
    private func searchLayer<S: NodeScorer>(_ scorer: S, entries: [Scored], ef: Int, layer: Int, admit: ((Int32) -> Bool)?) -> [Scored] {
        var marks = visitedPool.acquire(count: count)
        defer { visitedPool.release(marks) }
        if layer == 0 {
            // The hot path: layer 0's links through one pointer for the whole search.
            let stride = m0 + 1
            return links0.withUnsafeBufferPointer { l in
                walk(scorer, entries: entries, ef: ef, admit: admit, marks: &marks) { id in
                    let base = Int(id) * stride
                    return UnsafeBufferPointer(start: l.baseAddress! + base + 1, count: Int(l[base]))
                }
            }
        }
        return walk(scorer, entries: entries, ef: ef, admit: admit, marks: &marks) { id in withLinks(id, layer) { $0 } }
    }

    @inline(__always)
    private func walk<S: NodeScorer>(_ scorer: S, entries: [Scored], ef: Int, admit: ((Int32) -> Bool)?,
                                     marks: inout VisitedPool.Marks, links: (Int32) -> UnsafeBufferPointer<Int32>) -> [Scored] {
        let tag = marks.tag
        var candidates = ScoredHeap(bestOnTop: true)
        var results = ScoredHeap(bestOnTop: false)
        return marks.tags.withUnsafeMutableBufferPointer { seen in
            for e in entries where seen[Int(e.id)] != tag {
                seen[Int(e.id)] = tag
                candidates.push(e)
                if admit?(e.id) ?? true { results.push(e) }
            }
            while results.count > ef { _ = results.pop() }
            while let c = candidates.pop() {
                if results.count >= ef, let worst = results.top, Scored.before(worst, c) { break }
                let neighbours = links(c.id)
                // Start loading every unseen neighbour's vector before scoring the first.
                for n in neighbours where seen[Int(n)] != tag { scorer.prefetch(n) }
                for n in neighbours where seen[Int(n)] != tag {
                    seen[Int(n)] = tag
                    let s = Scored(score: scorer.score(n), id: n)
                    guard results.count < ef || Scored.before(s, results.top!) else { continue }
                    candidates.push(s)
                    if admit?(n) ?? true {
                        results.push(s)
                        if results.count > ef { _ = results.pop() }
                    }
                }
            }
            return results.items
        }
    }
}
