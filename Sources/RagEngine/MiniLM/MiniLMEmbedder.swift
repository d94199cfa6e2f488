import COpenBLAS
import CRagEncoder
import Foundation
import Synchronization

/// all-MiniLM-L6-v2 inside the server, no network: WordPiece + a 6-layer BERT
/// forward pass. The model directory holds `vocab.txt` and `model.safetensors`
/// (Scripts/fetch-minilm.sh installs them; `MiniLMLocation` finds them).
public struct MiniLMEmbedder: Embedder {
    /// The uncased model lower-cases every text first.
    public var isCaseSensitive: Bool { false }
    public let tokenizer: WordPieceTokenizer
    public let model: MiniLMModel
    public let precision: MiniLMPrecision
    let int8: MiniLMInt8Encoder?
    // Both precisions compute the same model (cosine ≥ 0.99 between them), so
    // a collection indexed with one is queried with the other.
    public var id: String { "minilm-l6-v2-384" }
    public var dimension: Int { 384 }

    public init(directory: String, precision: MiniLMPrecision = .preferred) throws {
        try MiniLMLocation.check(directory)
        tokenizer = try WordPieceTokenizer(vocabularyFile: directory + "/vocab.txt", maxLength: 256)
        model = try MiniLMModel(safetensors: directory + "/model.safetensors")
        self.precision = precision
        int8 = precision == .int8 ? try MiniLMInt8Encoder(model: model) : nil
        // Texts run in parallel, one per core: BLAS threads on top would only contend.
        openblas_set_num_threads(1)
    }

    /// The kernels the forward pass runs on, for start-up logs and benchmarks.
    public var kernel: String { precision == .int8 ? "int8 " + String(cString: rag_encoder_kernel_name()) : "float32 OpenBLAS" }

    /// The embedding of one token sequence.
    public func embed(ids: [Int32]) -> [Float] {
        int8?.embed(ids: ids) ?? model.embed(ids: ids)
    }

    public func embed(_ texts: [String]) async throws -> [[Float]] {
        try Task.checkCancellation()
        let results = Mutex([[Float]](repeating: [], count: texts.count))
        let workers = min(texts.count, ProcessInfo.processInfo.activeProcessorCount)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            for i in stride(from: w, to: texts.count, by: workers) {
                let v = embed(ids: tokenizer.encode(texts[i]))
                results.withLock { $0[i] = v }
            }
        }
        return results.withLock { $0 }
    }
}
