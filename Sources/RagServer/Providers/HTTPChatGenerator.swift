import Foundation
import RagCore
import RagEngine

/// Answers from a chat model, streamed: OpenAI-compatible `POST /v1/chat/completions`
/// with `stream: true` (server-sent events) or Ollama `POST /api/chat` (NDJSON).
/// The prompt numbers the sources and asks for `[n]` citations.
public struct HTTPChatGenerator: Generator {
    public typealias Flavor = ProviderFlavor

    public let flavor: Flavor
    public let model: String
    public let http: ProviderHTTP
    public var id: String { "\(flavor.rawValue)-chat:\(model)" }

    public init(flavor: Flavor, model: String, http: ProviderHTTP) {
        self.flavor = flavor
        self.model = model
        self.http = http
    }

    static let system = "Answer the question using only the numbered sources. Cite every claim with the source number in brackets, like [1]. "
        + "If the sources do not contain the answer, say so."

    static func prompt(_ question: String, _ sources: [GenerationSource]) -> String {
        let numbered = sources.enumerated().map { "[\($0.offset + 1)] (\($0.element.documentID)) \($0.element.text)" }.joined(separator: "\n\n")
        return "Sources:\n\(numbered)\n\nQuestion: \(question)"
    }

    public func events(question: String, sources: [GenerationSource]) -> AsyncThrowingStream<GenerationEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: GenerationEvent.self)
        let task = Task {
            do {
                let messages = [["role": "system", "content": Self.system], ["role": "user", "content": Self.prompt(question, sources)]]
                var body: [String: Any] = ["model": model, "messages": messages, "stream": true]
                if flavor == .openai { body["stream_options"] = ["include_usage": true] }
                let lines = try await http.lines(flavor == .openai ? "/v1/chat/completions" : "/api/chat",
                                                 body: try JSONSerialization.data(withJSONObject: body))
                var finished = false
                for try await line in lines {
                    for event in try parse(line, finished: &finished) { continuation.yield(event) }
                }
                // A stream cut short (a dropped connection, a proxy timeout) is a
                // failure, not a complete answer: it ends with [DONE] / done: true.
                guard finished else { throw RagError(.unavailable, "chat provider stream ended before the answer was complete") }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// One SSE or NDJSON line to events; malformed JSON is an error, not a crash.
    func parse(_ line: String, finished: inout Bool) throws -> [GenerationEvent] {
        var json = line
        if flavor == .openai {
            guard line.hasPrefix("data:") else { return [] }  // comments, event names
            json = String(line.dropFirst(5)).trimmingCharacters(in: .whitespaces)
            if json == "[DONE]" { finished = true; return [] }
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw RagError(.internal, "chat provider sent malformed JSON: \(json.prefix(80))")
        }
        var out: [GenerationEvent] = []
        switch flavor {
        case .openai:
            if let choices = object["choices"] as? [[String: Any]], let delta = choices.first?["delta"] as? [String: Any],
               let content = delta["content"] as? String, !content.isEmpty {
                out.append(.token(content))
            }
            if let usage = object["usage"] as? [String: Any] {
                out.append(.usage(prompt: (usage["prompt_tokens"] as? NSNumber)?.intValue ?? 0,
                                  completion: (usage["completion_tokens"] as? NSNumber)?.intValue ?? 0))
            }
        case .ollama:
            if let message = object["message"] as? [String: Any], let content = message["content"] as? String, !content.isEmpty {
                out.append(.token(content))
            }
            if (object["done"] as? Bool) == true {
                finished = true
                out.append(.usage(prompt: (object["prompt_eval_count"] as? NSNumber)?.intValue ?? 0,
                                  completion: (object["eval_count"] as? NSNumber)?.intValue ?? 0))
            }
        }
        return out
    }
}
