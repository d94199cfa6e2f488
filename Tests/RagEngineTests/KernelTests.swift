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

extension KernelTests {
    @Test func int8VariantsGiveTheSameFloats() {
        var g = SystemRandomNumberGenerator()
        for n in [1, 17, 64, 100, 384, 768] {
            let a = (0..<n).map { _ in Int8.random(in: -127...127, using: &g) }
            let b = (0..<n).map { _ in Float.random(in: -1...1, using: &g) }
            let portable = VectorMath.dot(variant: "portable", a, b)!
            for v in ["avx2", "avx512"] {
                guard let x = VectorMath.dot(variant: v, a, b) else { continue }
                #expect(x.bitPattern == portable.bitPattern, "\(v) n=\(n)")
            }
            let exact = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            #expect(abs(Double(portable) - exact) <= 1e-3 * Double(n), "n=\(n)")
        }
    }

    /// The int8 index answers as the exact one: same ids, same (exact) scores,
    /// through inserts that widen the scales, replacements and deletes.
    @Test func int8SearchMatchesExactSearch() throws {
        var g = Lcg32(seed: 9)
        let dim = 64
        let exact = PartitionIndex(dimension: dim, partition: 0)
        let int8 = PartitionIndex(dimension: dim, partition: 0, int8: true)
        func vector(_ magnitude: Float) -> [Float] { (0..<dim).map { _ in (g.unit() * 2 - 1) * magnitude } }
        for i in 0..<3000 {
            // Growing magnitudes force the scales to widen (codes rebuilt) several times.
            let m: Float = i < 1000 ? 0.1 : (i < 2000 ? 0.5 : 2)
            let doc = PreparedDocument(id: "d\(i % 2500)", metadata: [:], contentHash: UInt64(i), chunks: ["c"], embeddings: [vector(m)])
            exact.upsert(doc)
            int8.upsert(doc)
            if i % 7 == 0 { exact.remove("d\(i / 2)"); int8.remove("d\(i / 2)") }
        }
        var same = 0, total = 0
        for _ in 0..<40 {
            let q = vector(1)
            let a = try exact.vectorSearch(q, k: 10), b = try int8.vectorSearch(q, k: 10)
            total += a.count
            same += Set(a.map(\.key)).intersection(b.map(\.key)).count
            for h in b { if let e = a.first(where: { $0.key == h.key }) { #expect(e.score == h.score) } }
        }
        #expect(Double(same) / Double(total) >= 0.99, "recall \(same)/\(total)")
    }
}

struct Lcg32 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func unit() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 24)
    }
}

extension KernelTests {
    @Test func int8RowScanEqualsSingleDots() {
        var g = SystemRandomNumberGenerator()
        for dim in [37, 64, 384] {
            let rows = 29
            let codes = (0..<rows * dim).map { _ in Int8.random(in: -127...127, using: &g) }
            let q = (0..<dim).map { _ in Float.random(in: -1...1, using: &g) }
            let out = VectorMath.dotRows(codes, rows: rows, dim: dim, query: q)
            for r in 0..<rows {
                let single = VectorMath.dot(variant: "portable", Array(codes[r * dim..<(r + 1) * dim]), q)!
                #expect(out[r].bitPattern == single.bitPattern, "dim \(dim) row \(r)")
            }
        }
    }
}
