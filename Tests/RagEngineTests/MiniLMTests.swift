import Foundation
import RagEngine
import RagServer
import RagTesting
import Testing

/// all-MiniLM-L6-v2 against the reference vectors in ../shared/embed (produced by
/// sentence-transformers). Weights: Scripts/fetch-minilm.sh (run by Scripts/install-deps.sh).
@Suite struct MiniLMTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let modelDirectory = ProcessInfo.processInfo.environment["RAGD_MINILM_DIR"] ?? repo.appendingPathComponent("models/all-minilm-l6-v2").path
    /// A copy of ../shared/embed/reference.jsonl, so the test needs nothing outside the repository.
    static let referenceFile = ProcessInfo.processInfo.environment["RAGD_EMBED_REFERENCE"]
        ?? repo.appendingPathComponent("Tests/Fixtures/minilm-reference.jsonl").path

    struct Reference: Decodable {
        var text: String
        var input_ids: [Int32]
        var embedding: [Float]
    }

    /// float32 is the reference computation. int8 (the default) stays within
    /// cosine 0.98 of it on each of these stress sentences (0.986 measured, on
    /// a 2-word one: short texts average out less rounding) and 0.995 on average;
    /// on corpus chunks of ~200 word pieces the mean is 0.998.
    @Test(arguments: MiniLMPrecision.allCases)
    func matchesTheReferenceImplementation(precision: MiniLMPrecision) async throws {
        // Tens of seconds of arithmetic: on threads of its own, not on the few
        // cooperative threads that every in-process server of the run shares.
        try await withOwnThreads(1, name: "minilm-test") { _ in try await compareWithReference(precision) }
    }

    func compareWithReference(_ precision: MiniLMPrecision) async throws {
        let embedder = try MiniLMEmbedder(directory: Self.modelDirectory, precision: precision)
        let bound: Float = precision == .float32 ? 0.999 : 0.98
        var total: Float = 0
        let lines = try String(contentsOfFile: Self.referenceFile, encoding: .utf8).split(separator: "\n")
        let refs = try lines.map { try JSONDecoder().decode(Reference.self, from: Data($0.utf8)) }
        #expect(refs.count == 40)
        var worst: Float = 1
        for r in refs {
            #expect(embedder.tokenizer.encode(r.text) == r.input_ids, "ids of \(r.text.prefix(60).debugDescription)")
            let v = try await embedder.embed([r.text])[0]
            let cosine = VectorMath.dot(v, r.embedding)
            worst = min(worst, cosine)
            total += cosine
            #expect(cosine >= bound, "\(precision) cosine \(cosine) for \(r.text.prefix(60).debugDescription)")
        }
        #expect(total / Float(refs.count) >= (precision == .float32 ? 0.9999 : 0.995))
        print("MiniLM \(embedder.kernel): worst cosine against the reference over \(refs.count) sentences: \(worst), mean \(total / Float(refs.count))")
    }
}
