/// The built-in offline generator: picks the sentences of the top sources that
/// best match the question, within a length budget, keeps them in source order
/// and cites each as `[n]` (n = the source's position, from 1).
///
/// Deterministic, so `Stream` tokens always concatenate to the `Query` answer.
public struct ExtractiveGenerator: Generator {
    public var id: String { "extractive-v1" }
    public var maxCharacters: Int
    public var maxSentences: Int
    public var maxSources: Int

    public init(maxCharacters: Int = 600, maxSentences: Int = 4, maxSources: Int = 5) {
        self.maxCharacters = maxCharacters
        self.maxSentences = maxSentences
        self.maxSources = maxSources
    }

    public static let noAnswer = "No relevant passages were found."

    struct Candidate {
        var source: Int
        var position: Int
        var text: String
        var score: Double
    }

    public func compose(question: String, sources: [GenerationSource]) -> String {
        let wanted = Set(Tokenizer.terms(question))
        var candidates: [Candidate] = []
        for (i, src) in sources.prefix(maxSources).enumerated() {
            for (j, sentence) in Self.sentences(src.text).enumerated() {
                let terms = Tokenizer.terms(sentence)
                guard !terms.isEmpty else { continue }
                let overlap = Set(terms).intersection(wanted).count
                // Coverage of the question, damped for long sentences, and a
                // gentle preference for better-ranked sources.
                let score = Double(overlap) / Double(terms.count).squareRoot() - 0.01 * Double(i)
                candidates.append(Candidate(source: i, position: j, text: sentence, score: overlap > 0 ? score : -1 - Double(i)))
            }
        }
        guard !candidates.isEmpty else { return Self.noAnswer }
        let ranked = candidates.sorted {
            $0.score != $1.score ? $0.score > $1.score : ($0.source, $0.position) < ($1.source, $1.position)
        }
        var chosen: [Candidate] = []
        var used = 0
        for c in ranked {
            if chosen.count >= maxSentences { break }
            if !chosen.isEmpty, c.score < 0 { break }
            let cost = c.text.count + 5
            if !chosen.isEmpty, used + cost > maxCharacters { continue }
            chosen.append(c)
            used += cost
        }
        chosen.sort { ($0.source, $0.position) < ($1.source, $1.position) }
        return chosen.map { c in
            let t = c.text.count > maxCharacters ? String(c.text.prefix(maxCharacters)) + "…" : c.text
            return "\(t) [\(c.source + 1)]"
        }.joined(separator: " ")
    }

    public func events(question: String, sources: [GenerationSource]) -> AsyncThrowingStream<GenerationEvent, any Error> {
        let answer = compose(question: question, sources: sources)
        return AsyncThrowingStream { continuation in
            for token in Self.tokens(answer) { continuation.yield(.token(token)) }
            continuation.finish()
        }
    }

    /// Words with their trailing space, so the pieces concatenate exactly.
    static func tokens(_ text: String) -> [String] {
        var out: [String] = []
        var current = ""
        for ch in text {
            current.append(ch)
            if ch == " " { out.append(current); current = "" }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// Sentences with whitespace collapsed (man pages wrap and indent lines).
    static func sentences(_ text: String) -> [String] {
        var out: [String] = []
        var current = ""
        var lastWasSpace = false
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            let blankLine = c == "\n" && i + 1 < chars.count && chars[i + 1] == "\n"
            if c.isWhitespace {
                if !lastWasSpace, !current.isEmpty { current.append(" ") }
                lastWasSpace = true
            } else {
                current.append(c)
                lastWasSpace = false
            }
            let end = (c == "." || c == "!" || c == "?") && (i + 1 == chars.count || chars[i + 1].isWhitespace)
            if end || blankLine {
                let s = current.trimmingCharacters(in: " ")
                if !s.isEmpty { out.append(s) }
                current = ""
                lastWasSpace = false
            }
            i += 1
        }
        let s = current.trimmingCharacters(in: " ")
        if !s.isEmpty { out.append(s) }
        return out
    }
}

extension String {
    func trimmingCharacters(in c: Character) -> String {
        var s = Substring(self)
        while s.first == c { s.removeFirst() }
        while s.last == c { s.removeLast() }
        return String(s)
    }
}
