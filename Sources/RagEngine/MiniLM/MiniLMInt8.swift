import CRagEncoder
import RagCore

/// How the MiniLM forward pass computes its linear layers.
public enum MiniLMPrecision: String, Sendable, CaseIterable {
    /// int8 weights (per output row) and activations (per token), summed exactly
    /// in int32 by Ragd's own kernels (AVX-512 VNNI where the CPU has it): the
    /// default on CPUs with AVX-512 VNNI (see `preferred`).
    case int8
    /// float32 through OpenBLAS: the reference computation.
    case float32

    /// int8 where the CPU has AVX-512 VNNI (62 chunks/s on 2 cores here, 6.4× float32);
    /// float32 elsewhere, since the portable int8 kernels run at about half its speed.
    public static var preferred: MiniLMPrecision {
        String(cString: rag_encoder_kernel_name()) == "avx512-vnni" ? .int8 : .float32
    }
}

/// One packed int8 Linear layer (`rag_qlinear`), freed with its owner.
final class QuantizedLinear: @unchecked Sendable {
    // Immutable after init; the C kernels only read it.
    let layer: OpaquePointer
    let inputs: Int, outputs: Int

    init(weights: [Float], bias: [Float], outputs: Int, inputs: Int, inputRange: [Float]? = nil) throws {
        guard let l = rag_qlinear_make(weights, bias, outputs, inputs, inputRange) else { throw RagError(.resourceExhausted, "out of memory packing MiniLM weights") }
        layer = l
        self.inputs = inputs
        self.outputs = outputs
    }

    deinit { rag_qlinear_free(layer) }
}

/// The MiniLM encoder with int8 linear layers: Q, K and V fused into one
/// 1152-output layer (one quantisation of its input instead of three), the
/// attention heads, GELU and LayerNorm in float32 with vectorised kernels.
final class MiniLMInt8Encoder: Sendable {
    struct Layer {
        let qkv, o, i, out: QuantizedLinear
        let ln1g, ln1b, ln2g, ln2b: [Float]
    }

    let model: MiniLMModel
    let layers: [Layer]

    init(model: MiniLMModel) throws {
        self.model = model
        let d = MiniLMModel.hidden, inter = MiniLMModel.intermediate
        // A LayerNorm output is (z ⊙ γ) + β with z of unit variance: its outlier
        // channels are those with a large |γ| or |β| (Kovaleva et al. 2021, "BERT
        // busters"), so |β| + 4|γ| estimates each channel's range without data.
        func range(_ g: [Float], _ b: [Float]) -> [Float] { zip(g, b).map { abs($1) + 4 * abs($0) } }
        let inputs = [(model.embLNg, model.embLNb)] + model.layerWeights.map { ($0.ln2g, $0.ln2b) }
        layers = try model.layerWeights.enumerated().map { n, L in
            Layer(qkv: try QuantizedLinear(weights: L.q + L.k + L.v, bias: L.qb + L.kb + L.vb, outputs: 3 * d, inputs: d,
                                           inputRange: range(inputs[n].0, inputs[n].1)),
                  o: try QuantizedLinear(weights: L.o, bias: L.ob, outputs: d, inputs: d),
                  i: try QuantizedLinear(weights: L.i, bias: L.ib, outputs: inter, inputs: d, inputRange: range(L.ln1g, L.ln1b)),
                  out: try QuantizedLinear(weights: L.out, bias: L.outb, outputs: d, inputs: inter),
                  ln1g: L.ln1g, ln1b: L.ln1b, ln2g: L.ln2g, ln2b: L.ln2b)
        }
    }

    /// The pooled, normalised embedding of one token sequence.
    func embed(ids: [Int32]) -> [Float] {
        let n = ids.count, d = MiniLMModel.hidden, inter = MiniLMModel.intermediate
        guard n > 0 else { return [Float](repeating: 0, count: d) }
        var x = model.inputEmbeddings(ids)
        rag_add_layernorm(&x, nil, n, d, model.embLNg, model.embLNb, MiniLMModel.eps)
        let padded = (n + 63) / 64 * 64
        let scratchBytes = max(n * (inter + 8) + 64, (32 + n) * padded * 4)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchBytes, alignment: 64)
        defer { scratch.deallocate() }
        let bytes = scratch.assumingMemoryBound(to: UInt8.self), floats = scratch.assumingMemoryBound(to: Float.self)
        var qkv = [Float](repeating: 0, count: n * 3 * d)
        var context = [Float](repeating: 0, count: n * d)
        var attn = [Float](repeating: 0, count: n * d)
        var hidden = [Float](repeating: 0, count: n * inter)
        var out = [Float](repeating: 0, count: n * d)
        let scale = 1 / Float(MiniLMModel.headSize).squareRoot()
        for L in layers {
            rag_qlinear_apply(L.qkv.layer, x, n, &qkv, bytes)
            qkv.withUnsafeBufferPointer { p in
                context.withUnsafeMutableBufferPointer { c in
                    let base = p.baseAddress!
                    for h in 0..<MiniLMModel.heads {
                        let off = h * MiniLMModel.headSize
                        rag_attention_head(base + off, base + d + off, base + 2 * d + off, n, 3 * d, scale, c.baseAddress! + off, d, floats)
                    }
                }
            }
            rag_qlinear_apply(L.o.layer, context, n, &attn, bytes)
            rag_add_layernorm(&attn, x, n, d, L.ln1g, L.ln1b, MiniLMModel.eps)
            rag_qlinear_apply(L.i.layer, attn, n, &hidden, bytes)
            rag_gelu(&hidden, n * inter)
            rag_qlinear_apply(L.out.layer, hidden, n, &out, bytes)
            rag_add_layernorm(&out, attn, n, d, L.ln2g, L.ln2b, MiniLMModel.eps)
            swap(&x, &out)
        }
        return MiniLMModel.meanPoolNormalised(x, n)
    }
}
