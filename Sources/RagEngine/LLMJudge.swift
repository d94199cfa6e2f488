import Foundation

/// A judge's scores of one answer, each 1–5.
public struct JudgeScore: Sendable, Equatable {
    public var accuracy: Int
    public var relevance: Int
    public var completeness: Int
    public var reason: String

    public init(accuracy: Int, relevance: Int, completeness: Int, reason: String) {
        self.accuracy = accuracy
        self.relevance = relevance
        self.completeness = completeness
        self.reason = reason
    }
}

/// LLM-as-judge: asks a chat model to grade an answer against a reference
/// answer, and reads the grade robustly from whatever the model wraps it in.
public struct LLMJudge: Sendable {
    public let model: any Generator

    public init(model: any Generator) { self.model = model }

    public static func prompt(question: String, answer: String, reference: String) -> String {
        """
        Grade the ANSWER to the QUESTION against the REFERENCE answer. Score accuracy, relevance and \
        completeness from 1 (poor) to 5 (excellent) and give a one-sentence reason. Reply with JSON only: \
        {"accuracy": n, "relevance": n, "completeness": n, "reason": "..."}
        QUESTION: \(question)
        ANSWER: \(answer)
        REFERENCE: \(reference)
        """
    }

    public func judge(question: String, answer: String, reference: String) async throws -> JudgeScore? {
        // The generator interface takes sources; the whole grading prompt goes in as the question.
        let text = try await model.answer(question: Self.prompt(question: question, answer: answer, reference: reference), sources: [])
        return Self.parse(text)
    }

    /// Finds the first JSON object in `text` (inside code fences or prose, braces
    /// inside strings respected), accepts numbers or numeric strings, clamps to 1–5.
    public static func parse(_ text: String) -> JudgeScore? {
        let chars = Array(text)
        var start = 0
        while let open = chars[start...].firstIndex(of: "{") {
            var depth = 0, inString = false, escaped = false
            var end: Int?
            for i in open..<chars.count {
                let c = chars[i]
                if inString {
                    if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false }
                    continue
                }
                if c == "\"" { inString = true } else if c == "{" { depth += 1 } else if c == "}" {
                    depth -= 1
                    if depth == 0 { end = i; break }
                }
            }
            guard let e = end else { return nil }
            if let obj = try? JSONSerialization.jsonObject(with: Data(String(chars[open...e]).utf8)) as? [String: Any],
               let a = score(obj["accuracy"]), let r = score(obj["relevance"]), let c = score(obj["completeness"]) {
                return JudgeScore(accuracy: a, relevance: r, completeness: c, reason: obj["reason"] as? String ?? "")
            }
            start = open + 1
        }
        return nil
    }

    static func score(_ v: Any?) -> Int? {
        let d: Double?
        switch v {
        case let n as NSNumber: d = n.doubleValue
        case let s as String: d = Double(s.trimmingCharacters(in: .whitespaces))
        default: d = nil
        }
        guard let x = d, x.isFinite else { return nil }
        return min(5, max(1, Int(x.rounded())))
    }
}
