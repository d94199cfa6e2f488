import Foundation
import RagEngine
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

    @Test func matchesTheReferenceImplementation() async throws {
        let embedder = try MiniLMEmbedder(directory: Self.modelDirectory)
        let lines = try String(contentsOfFile: Self.referenceFile, encoding: .utf8).split(separator: "\n")
        let refs = try lines.map { try JSONDecoder().decode(Reference.self, from: Data($0.utf8)) }
        #expect(refs.count == 40)
        var worst: Float = 1
        for r in refs {
            #expect(embedder.tokenizer.encode(r.text) == r.input_ids, "ids of \(r.text.prefix(60).debugDescription)")
            let v = try await embedder.embed([r.text])[0]
            let cosine = VectorMath.dot(v, r.embedding)
            worst = min(worst, cosine)
            #expect(cosine >= 0.999, "cosine \(cosine) for \(r.text.prefix(60).debugDescription)")
        }
        print("MiniLM: worst cosine against the reference over \(refs.count) sentences: \(worst)")
    }
}
