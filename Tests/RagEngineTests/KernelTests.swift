import RagEngine
import Testing

/// The distance kernels: every variant this CPU runs gives the same float, bit
/// for bit, for every length (full 64-lane blocks, 16-lane steps and tails),
/// so scores do not depend on the machine; and each is an inner product.
@Suite struct KernelTests {
    @Test func everyVariantGivesTheSameFloats() {
        var g = SystemRandomNumberGenerator()
        var compared = 0
        for n in Array(0...200) + [383, 384, 385, 768, 1024, 1536] {
            let a = (0..<n).map { _ in Float.random(in: -1...1, using: &g) }
            let b = (0..<n).map { _ in Float.random(in: -1...1, using: &g) }
            let portable = VectorMath.dot(variant: "portable", a, b)!
            for v in ["avx2", "avx512"] {
                guard let x = VectorMath.dot(variant: v, a, b) else { continue }
                #expect(x.bitPattern == portable.bitPattern, "\(v) differs at n=\(n): \(x) vs \(portable)")
                compared += 1
            }
            #expect(VectorMath.dot(a, b).bitPattern == portable.bitPattern)
            let exact = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            #expect(abs(Double(portable) - exact) <= 1e-4 * max(1, Double(n).squareRoot()), "n=\(n)")
        }
        #expect(["avx512", "avx2", "portable"].contains(VectorMath.kernel))
        if VectorMath.kernel != "portable" { #expect(compared > 0) }
    }
}

extension KernelTests {
    /// The batched scan (four rows at a time where it can) equals one dot per row, bit for bit.
    @Test func rowScanEqualsSingleDots() {
        var g = SystemRandomNumberGenerator()
        for dim in [37, 64, 384] {
            let rows = 23
            let m = (0..<rows * dim).map { _ in Float.random(in: -1...1, using: &g) }
            let q = (0..<dim).map { _ in Float.random(in: -1...1, using: &g) }
            var out = [Float](repeating: 0, count: rows)
            m.withUnsafeBufferPointer { mb in q.withUnsafeBufferPointer { qb in out.withUnsafeMutableBufferPointer { ob in
                VectorMath.dotRows(mb.baseAddress!, rows: rows, dim: dim, query: qb.baseAddress!, out: ob.baseAddress!)
            } } }
            for r in 0..<rows {
                let single = VectorMath.dot(variant: "portable", Array(m[r * dim..<(r + 1) * dim]), q)!
                #expect(out[r].bitPattern == single.bitPattern, "dim \(dim) row \(r)")
            }
        }
    }
}
