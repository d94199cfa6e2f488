import COpenBLAS
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
    public var id: String { "minilm-l6-v2-384" }
    public var dimension: Int { 384 }

    public init(directory: String) throws {
        try MiniLMLocation.check(directory)
        tokenizer = try WordPieceTokenizer(vocabularyFile: directory + "/vocab.txt", maxLength: 256)
        model = try MiniLMModel(safetensors: directory + "/model.safetensors")
        // Texts run in parallel, one per core: BLAS threads on top would only contend.
        openblas_set_num_threads(1)
    }

    public func embed(_ texts: [String]) async throws -> [[Float]] {
        try Task.checkCancellation()
        let results = Mutex([[Float]](repeating: [], count: texts.count))
        let workers = min(texts.count, ProcessInfo.processInfo.activeProcessorCount)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            for i in stride(from: w, to: texts.count, by: workers) {
                let v = model.embed(ids: tokenizer.encode(texts[i]))
                results.withLock { $0[i] = v }
            }
        }
        return results.withLock { $0 }
    }
}
