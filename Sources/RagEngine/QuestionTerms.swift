/// What the extractive generator needs of a sentence, counted on its bytes:
/// how many terms `Tokenizer.terms` would give it and how many distinct
/// question terms are among them, by the tokenizer's own byte rules
/// (`Tokenizer.forEachASCIITerm`) but without making the terms: an answer
/// looks at a few dozen sentences, and making their terms was most of its cost.
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
        var terms = 0
        var matched: UInt64 = 0
        let ascii = sentence.withUTF8 { b in
            Tokenizer.forEachASCIITerm(b) { term, y in
                terms += 1
                matched |= match(term, appendingY: y)
            }
        }
        return ascii ? (terms, matched.nonzeroBitCount) : nil
    }

    /// The bit of the question term equal to `term` (+ "y"), or 0.
    private func match(_ term: UnsafeBufferPointer<UInt8>, appendingY: Bool) -> UInt64 {
        let n = term.count + (appendingY ? 1 : 0)
        for (t, w) in wanted.enumerated() where w.count == n {
            var k = 0
            while k < term.count, w[k] == term[k] { k += 1 }
            if k == term.count, !appendingY || w[k] == 121 { return 1 << UInt64(t) }
        }
        return 0
    }
}
