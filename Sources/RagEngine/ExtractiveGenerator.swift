/// The built-in offline generator: picks the sentences of the top sources that
/// best match the question, within a length budget, keeps them in source order
/// and cites each as `[n]` (n = the source's position, from 1).
///
/// Deterministic, so `Stream` tokens always concatenate to the `Query` answer.
public struct ExtractiveGenerator: Generator {
    public var id: String { "extractive-v2" }
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
        compose(question: question, sources: sources, screen: true)
    }

    /// `screen`: count each sentence's terms on its bytes (`QuestionTerms`)
    /// instead of tokenising it (the answer is the same either way; tests compare both).
    func compose(question: String, sources: [GenerationSource], screen: Bool) -> String {
        let wanted = Set(Tokenizer.terms(question))
        let counter = QuestionTerms(wanted)
        var candidates: [Candidate] = []
        for (i, src) in sources.prefix(maxSources).enumerated() {
            for (j, sentence) in Self.sentences(src.text).enumerated() {
                let terms: Int, overlap: Int
                if screen, let counted = counter.count(sentence) {
                    (terms, overlap) = counted
                } else {
                    let all = Tokenizer.terms(sentence)
                    // Distinct question terms in the sentence (a set of the matches only, not of every term).
                    var matched = Set<String>()
                    for t in all where wanted.contains(t) { matched.insert(t) }
                    (terms, overlap) = (all.count, matched.count)
                }
                guard terms > 0 else { continue }
                // Coverage of the question, damped for long sentences, and a
                // gentle preference for better-ranked sources.
                let score = Double(overlap) / Double(terms).squareRoot() - 0.01 * Double(i)
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
            let cost = Self.length(c.text) + 5
            if !chosen.isEmpty, used + cost > maxCharacters { continue }
            chosen.append(c)
            used += cost
        }
        chosen.sort { ($0.source, $0.position) < ($1.source, $1.position) }
        return chosen.map { c in
            let t = Self.length(c.text) > maxCharacters ? String(c.text.prefix(maxCharacters)) + "…" : c.text
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

    /// Characters in `text`; for ASCII its byte count, without walking grapheme clusters.
    static func length(_ text: String) -> Int {
        isASCII(text) ? text.utf8.count : text.count
    }

    /// Whether every byte of `text` is ASCII, so that each byte is a Character.
    static func isASCII(_ text: String) -> Bool { text.utf8.allSatisfy { $0 < 0x80 } }

    /// Words with their trailing space, so the pieces concatenate exactly.
    static func tokens(_ text: String) -> [String] {
        if isASCII(text) {
            // Every byte is a Character: split the bytes.
            var out: [String] = []
            let u = text.utf8
            var start = u.startIndex, i = u.startIndex
            while i != u.endIndex {
                let next = u.index(after: i)
                if u[i] == 32 {
                    out.append(String(text[start..<next]))
                    start = next
                }
                i = next
            }
            if start != u.endIndex { out.append(String(text[start...])) }
            return out
        }
        var out: [String] = []
        var current = ""
        for ch in text {
            current.append(ch)
            if ch == " " { out.append(current); current = "" }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// Sentences with whitespace collapsed (man pages wrap and indent lines):
    /// a sentence ends after `.`, `!` or `?` followed by whitespace, and at a
    /// blank line. Read as UTF-8 bytes, whitespace being Unicode's White_Space
    /// (decoded only where a multi-byte sequence could be one): an answer costs
    /// a few microseconds per source instead of the ~150 µs per source that
    /// walking Characters cost (`ragctl bench --generate-only`).
    static func sentences(_ text: String) -> [String] {
        var text = text
        return text.withUTF8 { b in
            var out: [String] = []
            var current: [UInt8] = []
            current.reserveCapacity(256)
            var lastWasSpace = false
            func flush() {
                if current.last == 32 { current.removeLast() }
                if !current.isEmpty { out.append(String(decoding: current, as: UTF8.self)) }
                current.removeAll(keepingCapacity: true)
                lastWasSpace = false
            }
            var i = 0
            while i < b.count {
                // A run of ASCII bytes that neither are whitespace nor may end a sentence: copied at once.
                var j = i
                while j < b.count {
                    let c = b[j]
                    if c >= 0x80 || c == 32 || (c >= 9 && c <= 13) || c == 46 || c == 33 || c == 63 { break }
                    j += 1
                }
                if j > i {
                    current.append(contentsOf: UnsafeBufferPointer(rebasing: b[i..<j]))
                    lastWasSpace = false
                    i = j
                    continue
                }
                let c = b[i]
                let width = Self.whitespaceWidth(b, i)
                let length = width > 0 ? width : Self.sequenceLength(c)
                if width > 0 {
                    if !lastWasSpace, !current.isEmpty { current.append(32) }
                    lastWasSpace = true
                } else {
                    for k in i..<min(i + length, b.count) { current.append(b[k]) }
                    lastWasSpace = false
                }
                let next = i + length
                let end = (c == 46 || c == 33 || c == 63) && (next >= b.count || Self.whitespaceWidth(b, next) > 0)
                if end || (c == 10 && next < b.count && b[next] == 10) { flush() }
                i = next
            }
            flush()
            return out
        }
    }

    /// Bytes of the whitespace character at `i` (0: not whitespace): ASCII 9...13
    /// and 32, and U+0085, U+00A0, U+1680, U+2000...U+200A, U+2028, U+2029,
    /// U+202F, U+205F, U+3000 in UTF-8.
    @inline(__always)
    static func whitespaceWidth(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int {
        let c = b[i]
        if c < 0x80 { return c == 32 || (c >= 9 && c <= 13) ? 1 : 0 }
        let n = b.count
        switch c {
        case 0xC2: return i + 1 < n && (b[i + 1] == 0x85 || b[i + 1] == 0xA0) ? 2 : 0
        case 0xE1: return i + 2 < n && b[i + 1] == 0x9A && b[i + 2] == 0x80 ? 3 : 0
        case 0xE2:
            guard i + 2 < n else { return 0 }
            let x = b[i + 1], y = b[i + 2]
            if x == 0x80, (0x80...0x8A).contains(y) || y == 0xA8 || y == 0xA9 || y == 0xAF { return 3 }
            return x == 0x81 && y == 0x9F ? 3 : 0
        case 0xE3: return i + 2 < n && b[i + 1] == 0x80 && b[i + 2] == 0x80 ? 3 : 0
        default: return 0
        }
    }

    /// Bytes of the UTF-8 sequence a lead byte starts (1 for a stray continuation byte).
    @inline(__always)
    static func sequenceLength(_ c: UInt8) -> Int {
        c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4
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
