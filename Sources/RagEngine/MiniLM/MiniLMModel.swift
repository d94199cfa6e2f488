import COpenBLAS
import Foundation
import RagCore

/// The all-MiniLM-L6-v2 sentence encoder: a 6-layer BERT (hidden 384, 12 heads,
/// intermediate 1536, post-LayerNorm, exact GELU) with mean pooling over all
/// positions and L2 normalisation. Weights come from `model.safetensors`;
/// matrix products go through OpenBLAS.
public final class MiniLMModel: Sendable {
    static let hidden = 384, heads = 12, headSize = 32, intermediate = 1536, layers = 6
    static let eps: Float = 1e-12

    struct Layer {
        var q, qb, k, kb, v, vb, o, ob, ln1g, ln1b, i, ib, out, outb, ln2g, ln2b: [Float]
    }

    let word: [Float], position: [Float], tokenType: [Float], embLNg: [Float], embLNb: [Float]
    let layerWeights: [Layer]

    public init(safetensors path: String) throws {
        let tensors = try SafeTensors.load(path)
        func t(_ name: String) throws -> [Float] {
            guard let v = tensors[name] else { throw RagError(.failedPrecondition, "\(path) has no tensor \(name)") }
            return v
        }
        word = try t("embeddings.word_embeddings.weight")
        position = try t("embeddings.position_embeddings.weight")
        tokenType = try t("embeddings.token_type_embeddings.weight")
        embLNg = try t("embeddings.LayerNorm.weight")
        embLNb = try t("embeddings.LayerNorm.bias")
        layerWeights = try (0..<Self.layers).map { n in
            let p = "encoder.layer.\(n)."
            return Layer(
                q: try t(p + "attention.self.query.weight"), qb: try t(p + "attention.self.query.bias"),
                k: try t(p + "attention.self.key.weight"), kb: try t(p + "attention.self.key.bias"),
                v: try t(p + "attention.self.value.weight"), vb: try t(p + "attention.self.value.bias"),
                o: try t(p + "attention.output.dense.weight"), ob: try t(p + "attention.output.dense.bias"),
                ln1g: try t(p + "attention.output.LayerNorm.weight"), ln1b: try t(p + "attention.output.LayerNorm.bias"),
                i: try t(p + "intermediate.dense.weight"), ib: try t(p + "intermediate.dense.bias"),
                out: try t(p + "output.dense.weight"), outb: try t(p + "output.dense.bias"),
                ln2g: try t(p + "output.LayerNorm.weight"), ln2b: try t(p + "output.LayerNorm.bias"))
        }
    }

    /// y[n×out] = x[n×in] · Wᵀ + b, W stored [out×in] (PyTorch's Linear layout).
    static func linear(_ x: [Float], _ n: Int, _ w: [Float], _ b: [Float], inSize: Int, outSize: Int) -> [Float] {
        var y = [Float](repeating: 0, count: n * outSize)
        for r in 0..<n { for c in 0..<outSize { y[r * outSize + c] = b[c] } }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(outSize), Int32(inSize), 1, x, Int32(inSize), w, Int32(inSize), 1, &y, Int32(outSize))
        return y
    }

    static func layerNorm(_ x: inout [Float], _ n: Int, _ g: [Float], _ b: [Float]) {
        let d = hidden
        for r in 0..<n {
            var mean: Float = 0
            for c in 0..<d { mean += x[r * d + c] }
            mean /= Float(d)
            var variance: Float = 0
            for c in 0..<d { let z = x[r * d + c] - mean; variance += z * z }
            variance /= Float(d)  // biased, as PyTorch
            let inv = 1 / (variance + eps).squareRoot()
            for c in 0..<d { x[r * d + c] = (x[r * d + c] - mean) * inv * g[c] + b[c] }
        }
    }

    /// The pooled, normalised embedding of one token sequence.
    public func embed(ids: [Int32]) -> [Float] {
        let n = ids.count, d = Self.hidden
        var x = inputEmbeddings(ids)
        Self.layerNorm(&x, n, embLNg, embLNb)
        let scale = 1 / Float(Self.headSize).squareRoot()
        for L in layerWeights {
            let q = Self.linear(x, n, L.q, L.qb, inSize: d, outSize: d)
            let k = Self.linear(x, n, L.k, L.kb, inSize: d, outSize: d)
            let v = Self.linear(x, n, L.v, L.vb, inSize: d, outSize: d)
            var context = [Float](repeating: 0, count: n * d)
            var scores = [Float](repeating: 0, count: n * n)
            for h in 0..<Self.heads {
                let off = h * Self.headSize
                // scores = Q_h · K_hᵀ / √32 (heads are column blocks of row-major Q, K)
                q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(Self.headSize), scale,
                                qp.baseAddress! + off, Int32(d), kp.baseAddress! + off, Int32(d), 0, &scores, Int32(n))
                } }
                for r in 0..<n {
                    var m = -Float.infinity
                    for c in 0..<n { m = max(m, scores[r * n + c]) }
                    var sum: Float = 0
                    for c in 0..<n { let e = exp(scores[r * n + c] - m); scores[r * n + c] = e; sum += e }
                    for c in 0..<n { scores[r * n + c] /= sum }
                }
                v.withUnsafeBufferPointer { vp in context.withUnsafeMutableBufferPointer { cp in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(Self.headSize), Int32(n), 1,
                                scores, Int32(n), vp.baseAddress! + off, Int32(d), 0, cp.baseAddress! + off, Int32(d))
                } }
            }
            var attn = Self.linear(context, n, L.o, L.ob, inSize: d, outSize: d)
            for i in 0..<(n * d) { attn[i] += x[i] }
            Self.layerNorm(&attn, n, L.ln1g, L.ln1b)
            var inter = Self.linear(attn, n, L.i, L.ib, inSize: d, outSize: Self.intermediate)
            for i in 0..<inter.count { let h = Double(inter[i]); inter[i] = Float(0.5 * h * (1 + erf(h / 2.0.squareRoot()))) }
            var out = Self.linear(inter, n, L.out, L.outb, inSize: Self.intermediate, outSize: d)
            for i in 0..<(n * d) { out[i] += attn[i] }
            Self.layerNorm(&out, n, L.ln2g, L.ln2b)
            x = out
        }
        return Self.meanPoolNormalised(x, n)
    }

    /// Word + position + token-type embeddings of each id, n × 384.
    func inputEmbeddings(_ ids: [Int32]) -> [Float] {
        let d = Self.hidden
        var x = [Float](repeating: 0, count: ids.count * d)
        for (i, id) in ids.enumerated() {
            for c in 0..<d { x[i * d + c] = word[Int(id) * d + c] + position[i * d + c] + tokenType[c] }
        }
        return x
    }

    /// The mean over all n positions, L2-normalised.
    static func meanPoolNormalised(_ x: [Float], _ n: Int) -> [Float] {
        let d = hidden
        var pooled = [Float](repeating: 0, count: d)
        for r in 0..<n { for c in 0..<d { pooled[c] += x[r * d + c] } }
        for c in 0..<d { pooled[c] /= Float(max(n, 1)) }
        var norm: Float = 0
        for v in pooled { norm += v * v }
        let inv = 1 / max(norm.squareRoot(), 1e-12)
        return pooled.map { $0 * inv }
    }
}

/// Reads float32 tensors from a .safetensors file: an 8-byte little-endian header
/// length, a JSON header (name → dtype, shape, data_offsets), then the raw data.
enum SafeTensors {
    static func load(_ path: String) throws -> [String: [Float]] {
        guard let data = FileManager.default.contents(atPath: path), data.count > 8 else {
            throw RagError(.failedPrecondition, "cannot read \(path): run Scripts/fetch-minilm.sh")
        }
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        guard headerLength > 0, 8 + headerLength <= data.count,
              let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as? [String: Any] else {
            throw RagError(.dataLoss, "\(path) is not a safetensors file")
        }
        let base = 8 + headerLength
        var out: [String: [Float]] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], info["dtype"] as? String == "F32",
                  let offsets = info["data_offsets"] as? [Int], offsets.count == 2,
                  base + offsets[1] <= data.count, offsets[0] <= offsets[1] else { continue }
            let count = (offsets[1] - offsets[0]) / 4
            var floats = [Float](repeating: 0, count: count)
            _ = floats.withUnsafeMutableBytes { data.copyBytes(to: $0, from: (base + offsets[0])..<(base + offsets[1])) }
            out[name] = floats
        }
        return out
    }
}
