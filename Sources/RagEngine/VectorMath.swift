import CRagKernels

/// Kernels over contiguous `Float` storage.
public enum VectorMath {
    /// Inner product of two `n`-float vectors, by the run-time dispatched C
    /// kernel (AVX-512, AVX2+FMA or portable; the same floats on each).
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        rag_dot(a, b, n)
    }

    /// Inner products of `query` with `rows` contiguous rows of `dim` floats, into `out`.
    @inline(__always)
    public static func dotRows(_ base: UnsafePointer<Float>, rows: Int, dim: Int, query: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        rag_dot_rows(base, rows, dim, query, out)
    }

    /// One inner product by the named variant ("portable", "avx2", "avx512"),
    /// nil when this CPU lacks it. For tests that every variant agrees.
    public static func dot(variant: String, _ a: [Float], _ b: [Float]) -> Float? {
        guard let v = ["portable", "avx2", "avx512"].firstIndex(of: variant), a.count == b.count else { return nil }
        var out: Float = 0
        let ok = a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in rag_dot_variant(Int32(v), pa.baseAddress, pb.baseAddress, a.count, &out) } }
        return ok != 0 ? out : nil
    }

    /// One int8-row inner product by the named variant, nil when this CPU lacks it. For tests.
    public static func dot(variant: String, _ a: [Int8], _ b: [Float]) -> Float? {
        guard let v = ["portable", "avx2", "avx512"].firstIndex(of: variant), a.count == b.count else { return nil }
        var out: Float = 0
        let ok = a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                pa.baseAddress!.withMemoryRebound(to: CSignedChar.self, capacity: a.count) { rag_dot_i8_variant(Int32(v), $0, pb.baseAddress, a.count, &out) }
            }
        }
        return ok != 0 ? out : nil
    }

    /// Inner products of `query` with `rows` int8 rows (the int8 first pass's scan).
    public static func dotRows(_ codes: [Int8], rows: Int, dim: Int, query: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: rows)
        codes.withUnsafeBufferPointer { c in
            query.withUnsafeBufferPointer { q in
                out.withUnsafeMutableBufferPointer { o in
                    c.baseAddress!.withMemoryRebound(to: CSignedChar.self, capacity: c.count) { rag_dot_rows_i8($0, rows, dim, q.baseAddress, o.baseAddress) }
                }
            }
        }
        return out
    }

    /// Which kernel the CPU got: "avx512", "avx2" or "portable".
    public static var kernel: String { String(cString: rag_kernel_name()) }

    /// Reads `n` floats once with the CPU's widest vectors: the floor any scan is measured against.
    public static func sumFloor(_ v: UnsafePointer<Float>, _ n: Int) -> Double { rag_sum_floor(v, n) }

    public static func dot(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        return a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in dot(pa.baseAddress!, pb.baseAddress!, a.count) } }
    }

    /// Scales `v` to unit length; a zero vector stays zero.
    public static func normalize(_ v: inout [Float]) {
        var norm: Float = 0
        for x in v { norm += x * x }
        norm = norm.squareRoot()
        guard norm > 0 else { return }
        for i in v.indices { v[i] /= norm }
    }
}
