import Foundation
import RagEngine

/// Chunks for the in-process benchmarks: a JSONL corpus's texts chunked
/// 1000/100 (at most `perDocument` chunks from each), or synthetic text.
enum BenchCorpus {
    static func chunks(_ corpus: String?, count: Int, perDocument: Int = .max, seed: UInt64) throws -> [String] {
        var chunks: [String] = []
        let chunker = try Chunker(size: 1000, overlap: 100)
        if let corpus, let data = FileManager.default.contents(atPath: corpus) {
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let text = obj["text"] as? String else { continue }
                chunks += chunker.chunks(text).prefix(perDocument)
                if chunks.count >= count { break }
            }
        } else {
            var rng = SplitMix64(seed: seed)
            chunks = (0..<count).map { _ in SyntheticText.document(&rng, words: 160) }
        }
        return Array(chunks.prefix(count))
    }
}
