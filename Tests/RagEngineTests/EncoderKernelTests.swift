import CRagEncoder
import Foundation
import Testing

/// The MiniLM kernels (Sources/CRagEncoder) against their definitions computed
/// in Double, and the int8 variants against each other bit for bit.
@Suite struct EncoderKernelTests {
    /// Uniform floats in [-1, 1), with every 37th column 12× larger: LayerNorm
    /// outputs have such outlier channels, and they set the int8 scale.
    static func values(_ count: Int, columns: Int, seed: UInt64) -> [Float] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { i in
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let u = Float(s >> 40) / Float(1 << 24) * 2 - 1
            return i % columns % 37 == 5 ? u * 12 : u
        }
    }

    @Test(arguments: [(1, 384, 384), (7, 384, 1152), (13, 1536, 384), (5, 10, 70), (6, 3, 1)])
    func int8LinearIsExactAcrossVariantsAndCloseToFloat(shape: (Int, Int, Int)) throws {
        let (n, k, m) = shape
        let w = Self.values(m * k, columns: k, seed: 1), b = Self.values(m, columns: m, seed: 2), x = Self.values(n * k, columns: k, seed: 3)
        let layer = try #require(rag_qlinear_make(w, b, m, k, nil))
        defer { rag_qlinear_free(layer) }
        var scratch = [UInt8](repeating: 0, count: n * (k + 8) + 64)
        var portable = [Float](repeating: .nan, count: n * m)
        #expect(rag_qlinear_apply_variant(0, layer, x, n, &portable, &scratch) == 1)
        var vnni = [Float](repeating: .nan, count: n * m)
        if rag_qlinear_apply_variant(2, layer, x, n, &vnni, &scratch) == 1 {
            #expect(vnni == portable, "the VNNI kernel must give the portable kernel's floats")
        }
        for r in 0..<n {
            var error = 0.0, norm = 0.0
            for o in 0..<m {
                var exact = Double(b[o])
                for i in 0..<k { exact += Double(x[r * k + i]) * Double(w[o * k + i]) }
                error += (Double(portable[r * m + o]) - exact) * (Double(portable[r * m + o]) - exact)
                norm += exact * exact
            }
            // int8 on both sides: about 1% of the output's norm (2% allows for the outliers).
            #expect((error / max(norm, 1e-30)).squareRoot() < 0.02, "row \(r) of \(shape)")
        }
    }

    @Test(arguments: [1, 2, 5, 63, 64, 65, 130])
    func attentionHeadMatchesItsDefinition(n: Int) {
        let stride = 96, d = 32  // q, k, v side by side in one row, as the fused QKV layer writes them
        let qkv = Self.values(n * stride, columns: stride, seed: UInt64(n))
        let padded = (n + 63) / 64 * 64
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: (32 + n) * padded * 4, alignment: 64)
        defer { scratch.deallocate() }
        var context = [Float](repeating: .nan, count: n * d)
        let scale = 1 / Float(d).squareRoot()
        qkv.withUnsafeBufferPointer { p in
            rag_attention_head(p.baseAddress!, p.baseAddress! + d, p.baseAddress! + 2 * d, n, stride, scale, &context, d,
                               scratch.assumingMemoryBound(to: Float.self))
        }
        var worst = 0.0
        for i in 0..<n {
            let scores = (0..<n).map { j in (0..<d).reduce(0.0) { $0 + Double(qkv[i * stride + $1]) * Double(qkv[j * stride + d + $1]) } * Double(scale) }
            let top = scores.max()!
            let e = scores.map { exp($0 - top) }, total = e.reduce(0, +)
            for t in 0..<d {
                let exact = (0..<n).reduce(0.0) { $0 + e[$1] / total * Double(qkv[$1 * stride + 2 * d + t]) }
                worst = max(worst, abs(exact - Double(context[i * d + t])))
            }
        }
        #expect(worst < 1e-5, "n = \(n): worst difference \(worst)")
    }

    @Test func geluMatchesErf() {
        var x = (0..<4001).map { Float($0 - 2000) / 200 }  // -10 … 10, and a tail past the 16-wide vectors
        let exact = x.map { 0.5 * Double($0) * (1 + erf(Double($0) / 2.0.squareRoot())) }
        rag_gelu(&x, x.count)
        for (got, want) in zip(x, exact) { #expect(abs(Double(got) - want) <= 1e-6 * max(1, abs(want))) }
    }
}
