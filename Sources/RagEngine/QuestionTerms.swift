/// What the extractive generator needs of a sentence, counted on its bytes:
/// how many terms `Tokenizer.terms` would give it and how many distinct
/// question terms are among them. The same rules as the tokenizer (lower-case
/// runs of letters, digits and `_`, underscores trimmed, identifiers kept whole
/// and split into parts, stop words dropped, the S-stemmer), without a String
/// or a hash per word: an answer tokenises a few dozen sentences, and making
/// their terms was most of its cost.
///
/// Only for ASCII sentences and questions of at most 64 distinct ASCII terms;
/// otherwise `count` says nil and the caller tokenises.
struct QuestionTerms {
    /// The distinct question terms, as bytes.
    let wanted: [[UInt8]]
    let usable: Bool

    init(_ wanted: Set<String>) {
        self.wanted = wanted.sorted().map { Array($0.utf8) }
        usable = wanted.count <= 64 && self.wanted.allSatisfy { $0.allSatisfy { $0 < 0x80 } }
    }

    /// (terms, distinct question terms among them), or nil when this cannot count
    /// the sentence (non-ASCII text, or an unusable question).
    func count(_ sentence: String) -> (terms: Int, matched: Int)? {
        guard usable else { return nil }
        var sentence = sentence
        return sentence.withUTF8 { count($0) }
    }

    private func count(_ b: UnsafeBufferPointer<UInt8>) -> (terms: Int, matched: Int)? {
        var terms = 0
        var matched: UInt64 = 0
        var start = -1
        var i = 0
        // Past the end, one more round closes the last word.
        while i <= b.count {
            let c: UInt8 = i < b.count ? b[i] : 32
            if c >= 0x80 { return nil }
            if Tokenizer.wordByte(c) != nil {
                if start < 0 { start = i }
            } else if start >= 0 {
                word(LowercaseBytes(b), start, i, &terms, &matched)
                start = -1
            }
            i += 1
        }
        return (terms, matched.nonzeroBitCount)
    }

    /// Counts the word `b[from..<to]` (read lower-cased) as `Tokenizer.terms` does.
    private func word(_ lower: LowercaseBytes, _ from: Int, _ to: Int, _ terms: inout Int, _ matched: inout UInt64) {
        // Underscores at either end are trimmed.
        var s = from, e = to
        while s < e, lower[s] == 95 { s += 1 }
        while e > s, lower[e - 1] == 95 { e -= 1 }
        guard s < e else { return }
        var parts = 0
        var k = s
        while k < e {
            while k < e, lower[k] == 95 { k += 1 }
            if k < e { parts += 1 }
            while k < e, lower[k] != 95 { k += 1 }
        }
        if parts > 1 {
            // An identifier: itself, unstemmed, and each part that is not a stop word, stemmed.
            terms += 1
            match(lower, s, e, appendingY: false, &matched)
            var p = s
            while p < e {
                while p < e, lower[p] == 95 { p += 1 }
                var q = p
                while q < e, lower[q] != 95 { q += 1 }
                if q > p, !Self.isStopWord(lower, p, q) {
                    terms += 1
                    let (end, y) = Self.stem(lower, p, q)
                    match(lower, p, end, appendingY: y, &matched)
                }
                p = q
            }
            return
        }
        if Self.isStopWord(lower, s, e) { return }
        terms += 1
        let (end, y) = Self.stem(lower, s, e)
        match(lower, s, end, appendingY: y, &matched)
    }

    /// Sets the bit of the question term equal to `w[from..<to]` (+ "y").
    private func match(_ w: LowercaseBytes, _ from: Int, _ to: Int, appendingY: Bool, _ matched: inout UInt64) {
        let n = to - from + (appendingY ? 1 : 0)
        for (t, term) in wanted.enumerated() where term.count == n {
            var k = 0
            while k < to - from, term[k] == w[from + k] { k += 1 }
            if k == to - from, !appendingY || term[k] == 121 { matched |= 1 << UInt64(t) }
        }
    }

    /// Harman's S-stemmer on bytes, as `Tokenizer.stem`: where the stem ends in
    /// `w[from..<to]`, and whether it takes a "y" (ies → y).
    static func stem(_ w: LowercaseBytes, _ from: Int, _ to: Int) -> (end: Int, y: Bool) {
        let n = to - from
        guard n > 3, w[to - 1] == 115 else { return (to, false) }
        func ends(_ suffix: StaticString) -> Bool {
            let m = suffix.utf8CodeUnitCount
            guard m <= n else { return false }
            let p = suffix.utf8Start
            for k in 0..<m where w[to - m + k] != p[k] { return false }
            return true
        }
        if ends("ies"), !ends("eies"), !ends("aies") { return (to - 3, true) }
        if ends("es"), !ends("aes"), !ends("ees"), !ends("oes") { return (to - 1, false) }
        if !ends("us"), !ends("ss") { return (to - 1, false) }
        return (to, false)
    }

    /// The stop words packed into integers (a word of up to 8 bytes is one
    /// UInt64), in an open-addressed table.
    private static let stopTable: (slots: [UInt64], longest: Int) = {
        var slots = [UInt64](repeating: 0, count: 512)
        var longest = 0
        for w in Tokenizer.stopWords {
            let b = Array(w.utf8)
            precondition(b.count <= 8 && b.allSatisfy { $0 < 0x80 }, "stop words are short ASCII words")
            longest = max(longest, b.count)
            var h = slot(pack(b, 0, b.count))
            while slots[h] != 0 { h = (h + 1) & 511 }
            slots[h] = pack(b, 0, b.count)
        }
        return (slots, longest)
    }()

    private static func pack(_ w: [UInt8], _ from: Int, _ to: Int) -> UInt64 {
        var key: UInt64 = 0
        for k in from..<to { key = key << 8 | UInt64(w[k]) }
        return key
    }

    private static func pack(_ w: LowercaseBytes, _ from: Int, _ to: Int) -> UInt64 {
        var key: UInt64 = 0
        for k in from..<to { key = key << 8 | UInt64(w[k]) }
        return key
    }

    private static func slot(_ key: UInt64) -> Int { Int((key &* 0x9E37_79B9_7F4A_7C15) >> 55) }

    static func isStopWord(_ w: LowercaseBytes, _ from: Int, _ to: Int) -> Bool {
        guard to - from <= stopTable.longest else { return false }
        let key = pack(w, from, to)
        var h = slot(key)
        while true {
            let v = stopTable.slots[h]
            if v == key { return true }
            if v == 0 { return false }
            h = (h + 1) & 511
        }
    }
}

/// A sentence's bytes, read lower-cased (ASCII).
struct LowercaseBytes {
    let base: UnsafeBufferPointer<UInt8>
    init(_ base: UnsafeBufferPointer<UInt8>) { self.base = base }

    @inline(__always)
    subscript(i: Int) -> UInt8 {
        let c = base[i]
        return c >= 65 && c <= 90 ? c + 32 : c
    }
}
