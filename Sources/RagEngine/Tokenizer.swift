/// Turns text into index terms for BM25, the hashing embedder and the
/// extractive generator, so all three agree on what a "word" is.
///
/// Lower-cases, splits on anything that is not a letter, digit or `_`, keeps
/// identifiers like `sqlite_busy` whole *and* adds their parts, drops English
/// stop words and strips plural endings (Harman's S-stemmer).
public enum Tokenizer {
    /// Terms in order of appearance (with repeats).
    public static func terms(_ text: String) -> [String] {
        var out: [String] = []
        out.reserveCapacity(text.utf8.count / 5)
        var text = text
        let ascii = text.withUTF8 { b in
            forEachASCIITerm(b) { term, y in
                var t = String(decoding: term, as: UTF8.self)
                if y { t.append("y") }
                out.append(t)
            }
        }
        if ascii { return out }
        out.removeAll(keepingCapacity: true)
        // Not ASCII: the byte path stopped at its first non-ASCII byte.
        for word in unicodeWords(text) {
            // Bytes, not `contains("_")`: that one goes through Foundation's string search.
            if word.utf8.contains(95) {
                let parts = word.split(separator: "_")
                if parts.count > 1 {
                    out.append(word)
                    for p in parts where !stopWords.contains(String(p)) { out.append(stem(String(p))) }
                    continue
                }
            }
            if stopWords.contains(word) { continue }
            out.append(stem(word))
        }
        return out
    }

    /// Lower-cased runs of letters, digits and `_` (no stop-word removal, no stemming).
    public static func words(_ text: String) -> [String] {
        asciiWords(text) ?? unicodeWords(text)
    }

    /// `words` through Unicode's properties (any text; ASCII by value).
    static func unicodeWords(_ text: String) -> [String] {
        var out: [String] = []
        // UTF-8 bytes of the word so far: appending bytes is far cheaper than
        // appending scalars to a String.
        var current: [UInt8] = []
        current.reserveCapacity(32)
        func flush() {
            if !current.isEmpty { out.append(trimUnderscores(String(decoding: current, as: UTF8.self))) }
            current.removeAll(keepingCapacity: true)
        }
        for s in text.unicodeScalars {
            if s.isASCII {
                // ASCII by value: Unicode's property tables cost far more, and give the same answer there.
                if let lower = wordByte(UInt8(s.value)) { current.append(lower) } else { flush() }
            } else if s.properties.isAlphabetic || s.properties.numericType != nil {
                current.append(contentsOf: s.properties.lowercaseMapping.utf8)
            } else {
                flush()
            }
        }
        flush()
        return out.filter { !$0.isEmpty }
    }

    /// The common case, on bytes: nil as soon as a non-ASCII byte shows up.
    static func asciiWords(_ text: String) -> [String]? {
        var text = text
        return text.withUTF8 { bytes -> [String]? in
            var out: [String] = []
            var start = -1
            var word: [UInt8] = []
            word.reserveCapacity(32)
            for i in 0..<bytes.count {
                let b = bytes[i]
                if b >= 0x80 { return nil }
                if let lower = wordByte(b) {
                    if start < 0 { start = i }
                    word.append(lower)
                } else if start >= 0 {
                    out.append(trimUnderscores(String(decoding: word, as: UTF8.self)))
                    word.removeAll(keepingCapacity: true)
                    start = -1
                }
            }
            if start >= 0 { out.append(trimUnderscores(String(decoding: word, as: UTF8.self))) }
            return out.filter { !$0.isEmpty }
        }
    }

    /// An ASCII byte of a word (letter, digit or `_`), lower-cased; nil: not one.
    @inline(__always)
    static func wordByte(_ c: UInt8) -> UInt8? {
        if (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 95 { return c }
        return c >= 65 && c <= 90 ? c + 32 : nil
    }

    private static func trimUnderscores(_ s: String) -> String {
        // Bytes, not Characters: `first` and `last` on a String walk grapheme clusters.
        guard s.utf8.first == 95 || s.utf8.last == 95 else { return s }
        return String(s.drop { $0 == "_" }.reversed().drop { $0 == "_" }.reversed())
    }

    /// Harman's S-stemmer: ies→y, es→e, s→"" with the usual exceptions.
    public static func stem(_ w: String) -> String {
        // Cheap byte checks first; `count` and `last` walk grapheme clusters.
        guard w.utf8.count > 3, w.utf8.last == 115, w.count > 3, w.last == "s" else { return w }
        if w.hasSuffix("ies"), !w.hasSuffix("eies"), !w.hasSuffix("aies") { return String(w.dropLast(3)) + "y" }
        if w.hasSuffix("es"), !w.hasSuffix("aes"), !w.hasSuffix("ees"), !w.hasSuffix("oes") { return String(w.dropLast(1)) }
        if !w.hasSuffix("us"), !w.hasSuffix("ss") { return String(w.dropLast(1)) }
        return w
    }

    public static let stopWords: Set<String> = [
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
        "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
        "they", "this", "to", "was", "will", "with", "what", "which", "who", "how", "does", "do",
        "can", "i", "you", "me", "my", "we", "our", "its", "from", "has", "have", "had", "been",
        "when", "where", "why", "should", "would", "could", "about", "so", "than", "too", "very",
    ]
}
