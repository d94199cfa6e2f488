/// The tokenizer's rules on ASCII bytes: the same terms as the general path,
/// without a String per word, a hash per stop-word check or a walk over
/// Characters to stem. Indexing, start-up (postings are rebuilt from every
/// chunk) and the extractive generator all tokenise ASCII text nearly always.
extension Tokenizer {
    /// Calls `body` with each term of `text` in order (its bytes, lower-cased,
    /// and whether a "y" follows them: the stemmer's ies → y), as `terms` gives
    /// them. False, part way through, at the first non-ASCII byte.
    static func forEachASCIITerm(_ text: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>, Bool) -> Void) -> Bool {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(text.count, 1)) { word in
            var n = 0
            // Past the end, one more round closes the last word.
            for i in 0...text.count {
                let c: UInt8 = i < text.count ? text[i] : 32
                if c >= 0x80 { return false }
                if let lower = wordByte(c) {
                    word[n] = lower
                    n += 1
                } else if n > 0 {
                    wordTerms(UnsafeBufferPointer(rebasing: word[0..<n]), body)
                    n = 0
                }
            }
            return true
        }
    }

    /// The terms of one lower-cased word: underscores at either end trimmed; an
    /// identifier (parts joined by `_`) gives itself, unstemmed, then each part
    /// that is not a stop word, stemmed; any other word itself, stemmed, unless
    /// it is a stop word.
    private static func wordTerms(_ w: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>, Bool) -> Void) {
        var s = 0, e = w.count
        while s < e, w[s] == 95 { s += 1 }
        while e > s, w[e - 1] == 95 { e -= 1 }
        guard s < e else { return }
        let word = UnsafeBufferPointer(rebasing: w[s..<e])
        if word.contains(95) {
            body(word, false)
            var p = 0
            while p < word.count {
                while p < word.count, word[p] == 95 { p += 1 }
                var q = p
                while q < word.count, word[q] != 95 { q += 1 }
                if q > p { stemmedUnlessStopWord(UnsafeBufferPointer(rebasing: word[p..<q]), body) }
                p = q
            }
            return
        }
        stemmedUnlessStopWord(word, body)
    }

    private static func stemmedUnlessStopWord(_ w: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>, Bool) -> Void) {
        guard !isStopWord(w) else { return }
        let (end, y) = stem(w)
        body(UnsafeBufferPointer(rebasing: w[0..<end]), y)
    }

    /// Harman's S-stemmer on bytes, as `stem(_:)`: where the stem ends, and
    /// whether it takes a "y".
    static func stem(_ w: UnsafeBufferPointer<UInt8>) -> (end: Int, y: Bool) {
        let n = w.count
        guard n > 3, w[n - 1] == 115 else { return (n, false) }
        func ends(_ suffix: StaticString) -> Bool {
            let m = suffix.utf8CodeUnitCount
            guard m <= n else { return false }
            let p = suffix.utf8Start
            for k in 0..<m where w[n - m + k] != p[k] { return false }
            return true
        }
        if ends("ies"), !ends("eies"), !ends("aies") { return (n - 3, true) }
        if ends("es"), !ends("aes"), !ends("ees"), !ends("oes") { return (n - 1, false) }
        if !ends("us"), !ends("ss") { return (n - 1, false) }
        return (n, false)
    }

    /// The stop words packed into integers (a word of up to 8 bytes is one
    /// UInt64), in an open-addressed table.
    private static let stopTable: (slots: [UInt64], longest: Int) = {
        var slots = [UInt64](repeating: 0, count: 512)
        var longest = 0
        for w in stopWords {
            let b = Array(w.utf8)
            precondition(b.count <= 8 && b.allSatisfy { $0 < 0x80 }, "stop words are short ASCII words")
            longest = max(longest, b.count)
            let key = b.withUnsafeBufferPointer(pack)
            var h = slot(key)
            while slots[h] != 0 { h = (h + 1) & 511 }
            slots[h] = key
        }
        return (slots, longest)
    }()

    private static func pack(_ w: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var key: UInt64 = 0
        for c in w { key = key << 8 | UInt64(c) }
        return key
    }

    private static func slot(_ key: UInt64) -> Int { Int((key &* 0x9E37_79B9_7F4A_7C15) >> 55) }

    /// Whether lower-case ASCII `w` is one of `stopWords`.
    static func isStopWord(_ w: UnsafeBufferPointer<UInt8>) -> Bool {
        guard w.count <= stopTable.longest else { return false }
        let key = pack(w)
        var h = slot(key)
        while true {
            let v = stopTable.slots[h]
            if v == key { return true }
            if v == 0 { return false }
            h = (h + 1) & 511
        }
    }
}
