import CRagKernels

/// How a walk scores a node against its query.
protocol NodeScorer {
    func score(_ node: Int32) -> Float
    /// Starts loading what `score` will read for `node`.
    func prefetch(_ node: Int32)
}

/// Exact inner products with the float vectors.
struct FloatScorer: NodeScorer {
    let q: UnsafePointer<Float>
    let v: UnsafePointer<Float>
    let dimension: Int
    let bytes: Int

    @inline(__always) func score(_ node: Int32) -> Float { rag_dot(q, v + Int(node) * dimension, dimension) }
    @inline(__always) func prefetch(_ node: Int32) { rag_prefetch(v + Int(node) * dimension, bytes) }
}

/// Inner products of the scaled query with the int8 codes (`ScalarQuantizer.scaled`).
struct CodeScorer: NodeScorer {
    let q: UnsafePointer<Float>
    let codes: UnsafePointer<CSignedChar>
    let dimension: Int

    @inline(__always) func score(_ node: Int32) -> Float { rag_dot_i8(codes + Int(node) * dimension, q, dimension) }
    @inline(__always) func prefetch(_ node: Int32) { rag_prefetch(codes + Int(node) * dimension, dimension) }
}
