import ArgumentParser
import Foundation
import RagEngine

/// Microseconds per answer of the extractive generator, in process: each
/// answer is composed from five ~1,000-character chunks of a corpus (or
/// synthetic text) for a six-word question taken from the first of them.
enum GenerateBench {
    static func run(corpus: String?, answers: Int) throws {
        let chunks = try BenchCorpus.chunks(corpus, count: answers + 4, perDocument: 2, seed: 9)
        guard chunks.count >= 5 else { throw ValidationError("need at least 5 chunks") }
        let generator = ExtractiveGenerator()
        var times: [Double] = []
        var characters = 0
        var checksum = 0
        for i in 0..<answers {
            let sources = (0..<5).map { GenerationSource(text: chunks[(i + $0) % chunks.count], documentID: "d\($0)") }
            let question = sources[0].text.split(separator: " ").prefix(6).joined(separator: " ")
            characters += sources.reduce(0) { $0 + $1.text.utf8.count }
            let t = Date()
            checksum &+= generator.compose(question: question, sources: sources).utf8.count
            times.append(Date().timeIntervalSince(t))
        }
        times.sort()
        let total = times.reduce(0, +)
        print(String(format: "extractive answers: %d from 5 chunks each (%.0f characters on average): mean %.1f µs, p50 %.1f µs, p99 %.1f µs; %.0f MB/s of source text (answers %d bytes in all)",
                     answers, Double(characters) / Double(answers), total / Double(answers) * 1e6, times[times.count / 2] * 1e6,
                     times[min(times.count - 1, times.count * 99 / 100)] * 1e6, Double(characters) / total / 1e6, checksum))
    }
}
