import Foundation

/// BERT's uncased WordPiece tokenizer, as all-MiniLM-L6-v2 uses it (see
/// ../shared/embed/README.md): special tokens typed literally are kept, text is
/// cleaned, CJK ideographs spaced, NFD-decomposed with accents dropped and
/// lower-cased scalar by scalar (no final-sigma rule), split on whitespace and
/// punctuation, then greedily matched longest-first against the vocabulary.
public struct WordPieceTokenizer: Sendable {
    public let vocab: [String: Int32]
    public let maxPieces: Int
    public static let cls: Int32 = 101, sep: Int32 = 102, unk: Int32 = 100
    static let specials = ["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]"]

    public init(vocabularyFile path: String, maxLength: Int = 256) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var v: [String: Int32] = [:]
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            v[String(line)] = Int32(i)
        }
        vocab = v
        maxPieces = maxLength - 2
    }

    /// `[CLS] pieces… [SEP]`, at most `maxPieces + 2` ids.
    public func encode(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        for segment in Self.splitSpecials(text) {
            if let special = segment.special { ids.append(vocab[special] ?? Self.unk); continue }
            for word in Self.words(segment.text) { ids.append(contentsOf: wordPiece(word)) }
        }
        return [Self.cls] + ids.prefix(maxPieces) + [Self.sep]
    }

    /// Literal special tokens are matched before any normalisation.
    static func splitSpecials(_ text: String) -> [(text: String, special: String?)] {
        var out: [(String, String?)] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            var earliest: (Range<Substring.Index>, String)?
            for s in specials {
                if let r = rest.range(of: s), earliest == nil || r.lowerBound < earliest!.0.lowerBound { earliest = (r, s) }
            }
            guard let (r, s) = earliest else { out.append((String(rest), nil)); break }
            if r.lowerBound > rest.startIndex { out.append((String(rest[..<r.lowerBound]), nil)) }
            out.append(("", s))
            rest = rest[r.upperBound...]
        }
        return out
    }

    static func isCJK(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0xF900...0xFAFF).contains(v) || (0x20000...0x2FA1F).contains(v)
    }

    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    /// Clean, space CJK, strip accents, lower-case, split on whitespace and punctuation.
    static func words(_ text: String) -> [String] {
        var cleaned = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            let v = s.value
            if v == 0 || v == 0xFFFD { continue }
            if s == "\t" || s == "\n" || s == "\r" { cleaned.append(" "); continue }
            switch s.properties.generalCategory {
            case .control, .format, .surrogate, .privateUse, .unassigned: continue
            case .spaceSeparator: cleaned.append(" "); continue
            default: break
            }
            if isCJK(v) { cleaned.append(" "); cleaned.append(s); cleaned.append(" ") } else { cleaned.append(s) }
        }
        var normalized = String.UnicodeScalarView()
        for s in String(cleaned).decomposedStringWithCanonicalMapping.unicodeScalars {
            if s.properties.generalCategory == .nonspacingMark { continue }
            // Per scalar: String.lowercased() would apply the final-sigma rule.
            normalized.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
        }
        var out: [String] = []
        var current = String.UnicodeScalarView()
        func flush() { if !current.isEmpty { out.append(String(current)); current = String.UnicodeScalarView() } }
        for s in normalized {
            if s.properties.isWhitespace || s == " " { flush(); continue }
            if isPunctuation(s) { flush(); out.append(String(s)); continue }
            current.append(s)
        }
        flush()
        return out
    }

    /// Greedy longest match; a word over 100 characters or not fully covered is [UNK].
    func wordPiece(_ word: String) -> [Int32] {
        let chars = Array(word.unicodeScalars)
        guard chars.count <= 100 else { return [Self.unk] }
        var pieces: [Int32] = []
        var start = 0
        while start < chars.count {
            var end = chars.count
            var found: Int32?
            while start < end {
                var piece = String(String.UnicodeScalarView(chars[start..<end]))
                if start > 0 { piece = "##" + piece }
                if let id = vocab[piece] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [Self.unk] }
            pieces.append(id)
            start = end
        }
        return pieces
    }
}
