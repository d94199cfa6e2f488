import Foundation
import RagEngine

/// Chunks per second of the in-process MiniLM embedder, on ~1,000-character chunks.
enum EmbedBench {
    static func run(directory: String, corpus: String?, count: Int) async throws {
        let t0 = Date()
        let embedder = try MiniLMEmbedder(directory: directory)
        print(String(format: "model loaded in %.2f s", Date().timeIntervalSince(t0)))
        var chunks: [String] = []
        let chunker = try Chunker(size: 1000, overlap: 100)
        if let corpus, let data = FileManager.default.contents(atPath: corpus) {
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let text = obj["text"] as? String else { continue }
                chunks += chunker.chunks(text)
                if chunks.count >= count { break }
            }
        } else {
            var rng = SplitMix64(seed: 5)
            chunks = (0..<count).map { _ in SyntheticText.document(&rng, words: 160) }
        }
        chunks = Array(chunks.prefix(count))
        let t = Date()
        let pieces = chunks.map { embedder.tokenizer.encode($0).count }
        _ = try await embedder.embed(chunks)
        let s = Date().timeIntervalSince(t)
        print(String(format: "MiniLM: %d chunks (mean %.0f word pieces) in %.2f s = %.1f chunks/s", chunks.count,
                     Double(pieces.reduce(0, +)) / Double(max(1, pieces.count)), s, Double(chunks.count) / s))
    }
}
