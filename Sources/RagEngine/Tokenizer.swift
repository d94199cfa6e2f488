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
        for word in words(text) {
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
        if let ascii = asciiWords(text) { return ascii }
        var out: [String] = []
        var current = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if s.properties.isAlphabetic || s.properties.numericType != nil || s == "_" {
                if s.isASCII {
                    let v = s.value
                    current.append(v >= 65 && v <= 90 ? Unicode.Scalar(v + 32)! : s)
                } else {
                    current.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
                }
            } else if !current.isEmpty {
                out.append(trimUnderscores(String(current)))
                current.removeAll(keepingCapacity: true)
            }
        }
        if !current.isEmpty { out.append(trimUnderscores(String(current))) }
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
                let isWord = (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b == 95 || (b >= 65 && b <= 90)
                if isWord {
                    if start < 0 { start = i }
                    word.append(b >= 65 && b <= 90 ? b + 32 : b)
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

    private static func trimUnderscores(_ s: String) -> String {
        guard s.first == "_" || s.last == "_" else { return s }
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
