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

    /// `screen`: skip tokenising sentences that `QuestionProbes` proves hold no
    /// question term (the answer is the same either way; tests compare both).
    func compose(question: String, sources: [GenerationSource], screen: Bool) -> String {
        let wanted = Set(Tokenizer.terms(question))
        let probes = QuestionProbes(wanted)
        var candidates: [Candidate] = []
        for (i, src) in sources.prefix(maxSources).enumerated() {
            for (j, sentence) in Self.sentences(src.text).enumerated() {
                if screen, !probes.mayMatch(sentence) {
                    // No question term: its score does not depend on its length.
                    guard Tokenizer.hasTerm(sentence) else { continue }
                    candidates.append(Candidate(source: i, position: j, text: sentence, score: -1 - Double(i)))
                    continue
                }
                let terms = Tokenizer.terms(sentence)
                guard !terms.isEmpty else { continue }
                // Distinct question terms in the sentence (a set of the matches only, not of every term).
                var matched = Set<String>()
                for t in terms where wanted.contains(t) { matched.insert(t) }
                let overlap = matched.count
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

/// A cheap screen for sentences that cannot hold a question term. Every term
/// a word yields (itself, its underscore parts, their S-stems) contains the
/// term's "probe" as a substring of the lower-cased word: the term, less a
/// final "y" (ies → y is the one stem that is not a prefix of its word). So
/// a sentence containing no probe, case-insensitively, holds no question
/// term. Only for ASCII: a non-ASCII letter can lower-case to ASCII ones.
struct QuestionProbes {
    let probes: [[UInt8]]
    let usable: Bool

    init(_ wanted: Set<String>) {
        probes = wanted.sorted().map { t in Array(t.utf8.last == 121 && t.utf8.count > 1 ? t.utf8.dropLast() : t.utf8[...]) }
        usable = !wanted.isEmpty && wanted.allSatisfy { t in t.utf8.allSatisfy { $0 < 0x80 } }
    }

    /// False only when the sentence surely holds no question term.
    func mayMatch(_ sentence: String) -> Bool {
        guard usable else { return !probes.isEmpty }
        var sentence = sentence
        return sentence.withUTF8 { b in
            var lower = [UInt8](repeating: 0, count: b.count)
            for i in 0..<b.count {
                let c = b[i]
                if c >= 0x80 { return true }
                lower[i] = c >= 65 && c <= 90 ? c + 32 : c
            }
            return probes.contains { p in Self.contains(lower, p) }
        }
    }

    /// Whether `p` occurs in `text`. A plain loop: the standard library's
    /// generic `firstRange(of:)` made answers four times slower.
    static func contains(_ text: [UInt8], _ p: [UInt8]) -> Bool {
        guard let first = p.first, p.count <= text.count else { return p.isEmpty }
        for i in 0...(text.count - p.count) where text[i] == first {
            var k = 1
            while k < p.count, text[i + k] == p[k] { k += 1 }
            if k == p.count { return true }
        }
        return false
    }
}

