/// One source handed to a generator, numbered from 1 in the order given.
public struct GenerationSource: Sendable {
    public var text: String
    public var documentID: String

    public init(text: String, documentID: String) {
        self.text = text
        self.documentID = documentID
    }
}

/// Produces an answer from a question and its sources, token by token.
/// Concatenating the tokens gives the whole answer.
public protocol Generator: Sendable {
    var id: String { get }
    func generate(question: String, sources: [GenerationSource]) -> AsyncThrowingStream<String, any Error>
}

extension Generator {
    /// The whole answer at once.
    public func answer(question: String, sources: [GenerationSource]) async throws -> String {
        var out = ""
        for try await token in generate(question: question, sources: sources) { out += token }
        return out
    }
}
