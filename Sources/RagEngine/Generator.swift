/// One source handed to a generator, numbered from 1 in the order given.
public struct GenerationSource: Sendable {
    public var text: String
    public var documentID: String

    public init(text: String, documentID: String) {
        self.text = text
        self.documentID = documentID
    }
}

/// What a generator produces: answer tokens, and (from model providers) how many
/// prompt and completion tokens the call cost.
public enum GenerationEvent: Sendable, Equatable {
    case token(String)
    case usage(prompt: Int, completion: Int)
}

/// Produces an answer from a question and its sources, token by token.
/// Concatenating the tokens gives the whole answer.
public protocol Generator: Sendable {
    var id: String { get }
    func events(question: String, sources: [GenerationSource]) -> AsyncThrowingStream<GenerationEvent, any Error>
}

extension Generator {
    /// The answer's tokens only.
    public func generate(question: String, sources: [GenerationSource]) -> AsyncThrowingStream<String, any Error> {
        let events = self.events(question: question, sources: sources)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await e in events { if case .token(let t) = e { continuation.yield(t) } }
                    continuation.finish()
                } catch { continuation.finish(throwing: error) }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// The whole answer at once.
    public func answer(question: String, sources: [GenerationSource]) async throws -> String {
        var out = ""
        for try await token in generate(question: question, sources: sources) { out += token }
        return out
    }
}
