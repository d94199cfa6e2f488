import Foundation
import RagEngine

/// Chunks per second of the in-process MiniLM embedder, on ~1,000-character chunks.
enum EmbedBench {
    static func run(directory: String, corpus: String?, count: Int) async throws {
        let chunks = try BenchCorpus.chunks(corpus, count: count, seed: 5)
        // Both precisions in one run (the machine's speed drifts between runs), and
        // how far the int8 vectors are from the float32 reference ones.
        var results: [[[Float]]] = []
        var rates: [Double] = []
        for precision in [MiniLMPrecision.float32, .int8] {
            let t0 = Date()
            let embedder = try MiniLMEmbedder(directory: directory, precision: precision)
            print(String(format: "%@: model loaded in %.2f s", embedder.kernel, Date().timeIntervalSince(t0)))
            let t = Date()
            let pieces = chunks.map { embedder.tokenizer.encode($0).count }
            results.append(try await embedder.embed(chunks))
            let s = Date().timeIntervalSince(t)
            rates.append(Double(chunks.count) / s)
            print(String(format: "MiniLM %@: %d chunks (mean %.0f word pieces) in %.2f s = %.1f chunks/s", embedder.kernel, chunks.count,
                         Double(pieces.reduce(0, +)) / Double(max(1, pieces.count)), s, rates.last!))
        }
        let cosines = zip(results[0], results[1]).map { Double(VectorMath.dot($0, $1)) }
        print(String(format: "int8 / float32: %.2f× the speed; cosine to float32 mean %.5f, min %.5f", rates[1] / rates[0],
                     cosines.reduce(0, +) / Double(max(1, cosines.count)), cosines.min() ?? 0))
    }
}
