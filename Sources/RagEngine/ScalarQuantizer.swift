import CRagKernels

/// int8 codes of a partition's vectors for a fast first pass: per dimension a
/// symmetric scale learned from the data (the largest magnitude seen, with
/// headroom), so code = round(x / scale) in −127…127. A vector that does not
/// fit the current scales widens them and every row is coded again (rare:
/// the headroom makes each widening at least 25%). The first pass ranks by
/// Σ q_i · scale_i · code_i; the best candidates are then scored exactly from
/// the float vectors, so what a query returns is ranked by exact scores.
struct ScalarQuantizer {
    let dimension: Int
    private(set) var scale: [Float]
    private(set) var codes: [Int8] = []
    static let headroom: Float = 1.25

    init(dimension: Int) {
        self.dimension = dimension
        scale = [Float](repeating: 0, count: dimension)
    }

    /// Saved scales and codes, as they were (`PartitionIndex+Image`).
    init(scale: [Float], codes: [Int8]) {
        dimension = scale.count
        self.scale = scale
        self.codes = codes
    }

    /// Codes for `rows` rows of `vectors` under saved scales; nil when a row
    /// does not fit them (they were not these vectors' scales).
    init?(scale: [Float], vectors: UnsafeBufferPointer<Float>, rows: Int) {
        dimension = scale.count
        self.scale = scale
        grow(toRows: rows)
        for r in 0..<rows where !set(row: r, UnsafeBufferPointer(rebasing: vectors[r * dimension..<(r + 1) * dimension])) { return nil }
    }

    func withCodes<T>(_ body: (UnsafePointer<CSignedChar>) -> T) -> T {
        codes.withUnsafeBufferPointer { c in c.baseAddress!.withMemoryRebound(to: CSignedChar.self, capacity: c.count) { body($0) } }
    }

    /// Keeps `codes` as long as the slots (one row per slot).
    mutating func grow(toRows rows: Int) {
        if codes.count < rows * dimension { codes.append(contentsOf: repeatElement(0, count: rows * dimension - codes.count)) }
    }

    /// Codes row `row` from `v`; returns false when `v` does not fit the scales
    /// (then the caller widens them with `rebuild`).
    mutating func set(row: Int, _ v: UnsafeBufferPointer<Float>) -> Bool {
        for i in 0..<dimension where abs(v[i]) > scale[i] * 127 { return false }
        let base = row * dimension
        codes.withUnsafeMutableBufferPointer { c in
            for i in 0..<dimension { c[base + i] = scale[i] > 0 ? Int8((v[i] / scale[i]).rounded()) : 0 }
        }
        return true
    }

    mutating func clear(row: Int) {
        let base = row * dimension
        codes.withUnsafeMutableBufferPointer { c in for i in 0..<dimension { c[base + i] = 0 } }
    }

    /// New scales from every row of `vectors` (with headroom), every row coded again.
    mutating func rebuild(_ v: UnsafeBufferPointer<Float>, rows: Int) {
        var absmax = [Float](repeating: 0, count: dimension)
        for r in 0..<rows { for i in 0..<dimension { absmax[i] = max(absmax[i], abs(v[r * dimension + i])) } }
        scale = absmax.map { $0 * Self.headroom / 127 }
        codes = [Int8](repeating: 0, count: rows * dimension)
        for r in 0..<rows { _ = set(row: r, UnsafeBufferPointer(rebasing: v[r * dimension..<(r + 1) * dimension])) }
    }

    /// The query as the first pass uses it: q_i · scale_i.
    func scaled(_ query: [Float]) -> [Float] { zip(query, scale).map { $0 * $1 } }

    /// First-pass scores of rows `start..<start+count` into `out`.
    func scan(start: Int, count: Int, scaledQuery q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        codes.withUnsafeBufferPointer { c in
            c.baseAddress!.withMemoryRebound(to: CSignedChar.self, capacity: c.count) { base in
                rag_dot_rows_i8(base + start * dimension, count, dimension, q, out)
            }
        }
    }
}
