import RagCore
@testable import RagEngine
import Testing

func doc(_ id: String, _ text: String, _ meta: Metadata = [:], vector: [Float]? = nil, dim: Int = 4) -> PreparedDocument {
    PreparedDocument(id: id, metadata: meta, contentHash: 0, chunks: [text],
                     embeddings: [vector ?? [Float](repeating: 0, count: dim)])
}

@Suite struct BM25Tests {
    /// Corpus: A "apple banana apple" (3 terms), B "banana cherry" (2), C "cherry date elder fig" (4); avgdl 3.
    /// idf(apple) = ln(1 + 2.5/1.5) = 0.980829; idf(banana) = ln(1 + 1.5/2.5) = 0.470004.
    /// A·apple: 0.980829 · 2·2.2 / (2 + 1.2) = 1.348640
    /// A·banana: 0.470004 · 2.2 / (1 + 1.2) = 0.470004
    /// B·banana: 0.470004 · 2.2 / (1 + 1.2·(0.25 + 0.75·2/3)) = 0.544215
    func corpus() -> PartitionIndex {
        let p = PartitionIndex(dimension: 4, partition: 0)
        p.upsert(doc("A", "apple banana apple"))
        p.upsert(doc("B", "banana cherry"))
        p.upsert(doc("C", "cherry date elder fig"))
        return p
    }

    func search(_ p: PartitionIndex, _ q: String) throws -> [Hit] {
        let terms = Tokenizer.terms(q)
        return try p.keywordSearch(terms, stats: p.keywordStats(terms), k: 10)
    }

    @Test func scoresMatchHandComputedValues() throws {
        let p = corpus()
        let apple = try search(p, "apple")
        #expect(apple.map(\.key.documentID) == ["A"])
        #expect(abs(apple[0].score - 1.348640) < 1e-5)
        let banana = try search(p, "banana")
        #expect(banana.map(\.key.documentID) == ["B", "A"])
        #expect(abs(banana[0].score - 0.544215) < 1e-5)
        #expect(abs(banana[1].score - 0.470004) < 1e-5)
        let both = try search(p, "banana apple")
        #expect(abs(both[0].score - 1.818644) < 1e-5)
    }

    @Test func globalStatisticsMakeScoresIndependentOfPartitioning() throws {
        let whole = corpus()
        let p1 = PartitionIndex(dimension: 4, partition: 0)
        let p2 = PartitionIndex(dimension: 4, partition: 1)
        p1.upsert(doc("A", "apple banana apple"))
        p2.upsert(doc("B", "banana cherry"))
        p2.upsert(doc("C", "cherry date elder fig"))
        let terms = Tokenizer.terms("banana apple")
        var stats = p1.keywordStats(terms)
        stats.add(p2.keywordStats(terms))
        #expect(stats == whole.keywordStats(terms))
        let merged = HitMerge.topK([try p1.keywordSearch(terms, stats: stats, k: 10), try p2.keywordSearch(terms, stats: stats, k: 10)], k: 10)
        let single = try whole.keywordSearch(terms, stats: stats, k: 10)
        #expect(merged.map(\.key) == single.map(\.key))
        #expect(merged.map(\.score) == single.map(\.score))
    }

    @Test func removalUpdatesPostingsAndStatistics() throws {
        let p = corpus()
        p.remove("A")
        #expect(try search(p, "apple").isEmpty)
        #expect(p.keywordStats(["banana"]).documentFrequency["banana"] == 1)
        #expect(p.keywordStats([]).totalLength == 6)
    }

    /// Without texts in memory, a removal told the old texts and one that is
    /// not (every posting list swept) leave the same index as one that never
    /// held the removed documents; hits carry no text.
    @Test func anIndexWithoutTextsRemovesWithTheTextsItIsGivenOrBySweeping() throws {
        let words = ["apple", "banana", "cherry", "date", "elder", "fig", "grape"]
        var rng = SplitMix64(seed: 7)
        let docs = (0..<60).map { i in
            PreparedDocument(id: "d\(i)", metadata: ["title": .string(words[i % 7])], contentHash: UInt64(i),
                             chunks: (0..<3).map { _ in (0..<8).map { _ in words[Int(rng.next() % 7)] }.joined(separator: " ") },
                             embeddings: Array(repeating: [0, 0, 0, 0], count: 3))
        }
        let lean = PartitionIndex(dimension: 4, partition: 0, kind: .flat, keepsTexts: false)
        for d in docs { lean.upsert(d) }
        for d in docs where Int(d.id.dropFirst())! % 3 == 0 { lean.remove(d.id, chunks: d.chunks) }  // told
        for d in docs where Int(d.id.dropFirst())! % 3 == 1 { lean.remove(d.id) }  // swept
        // Replacing with the old texts given, then with a wrong count (swept).
        lean.upsert(docs[2], replacing: docs[2].chunks)
        lean.upsert(docs[5], replacing: ["too few"])
        let fresh = PartitionIndex(dimension: 4, partition: 0)
        for d in docs where Int(d.id.dropFirst())! % 3 == 2 { fresh.upsert(d) }
        for q in words + ["apple fig", "cherry date grape"] {
            let terms = Tokenizer.terms(q)
            #expect(lean.keywordStats(terms) == fresh.keywordStats(terms), "\(q)")
            let a = try lean.keywordSearch(terms, stats: lean.keywordStats(terms), k: 100)
            let b = try fresh.keywordSearch(terms, stats: fresh.keywordStats(terms), k: 100)
            #expect(a.map(\.key) == b.map(\.key) && a.map(\.score) == b.map(\.score), "\(q)")
            #expect(!a.isEmpty && a.allSatisfy { $0.text.isEmpty } && b.allSatisfy { !$0.text.isEmpty })
            #expect(a.allSatisfy { $0.contentHash == UInt64(Int($0.key.documentID.dropFirst())!) })
        }
    }
}

@Suite struct VectorSearchTests {
    @Test func exactSearchEqualsBruteForce() throws {
        var rng = SystemRandomNumberGenerator()
        let dim = 37  // not a multiple of 16: exercises the scalar tail
        let p = PartitionIndex(dimension: dim, partition: 0)
        var all: [(String, [Float])] = []
        for i in 0..<500 {
            var v = (0..<dim).map { _ in Float.random(in: -1...1, using: &rng) }
            VectorMath.normalize(&v)
            all.append(("d\(i)", v))
            p.upsert(doc("d\(i)", "text \(i)", ["i": .number(Double(i))], vector: v, dim: dim))
        }
        var q = (0..<dim).map { _ in Float.random(in: -1...1, using: &rng) }
        VectorMath.normalize(&q)
        let expected = all.map { ($0.0, zip($0.1, q).reduce(Float(0)) { $0 + $1.0 * $1.1 }) }.sorted { $0.1 > $1.1 }.prefix(10).map(\.0)
        let got = try p.vectorSearch(q, k: 10).map(\.key.documentID)
        #expect(got == Array(expected))
    }

    @Test func filterAppliesBeforeTopK() throws {
        let p = PartitionIndex(dimension: 2, partition: 0)
        // 100 near-perfect matches without the tag, 3 weak matches with it.
        for i in 0..<100 { p.upsert(doc("good\(i)", "x", ["tag": .string("no")], vector: [1, 0], dim: 2)) }
        for i in 0..<3 { p.upsert(doc("tagged\(i)", "x", ["tag": .string("yes")], vector: [0, 1], dim: 2)) }
        let hits = try p.vectorSearch([1, 0], k: 3, filter: .compare(key: "tag", op: .eq, values: [.string("yes")]))
        #expect(hits.map(\.key.documentID) == ["tagged0", "tagged1", "tagged2"])
    }

    @Test func tiesBreakByDocumentIDThenOrdinal() throws {
        let p = PartitionIndex(dimension: 2, partition: 0)
        for id in ["b", "a", "c", "aa"] { p.upsert(doc(id, "same", vector: [1, 0], dim: 2)) }
        #expect(try p.vectorSearch([1, 0], k: 3).map(\.key.documentID) == ["a", "aa", "b"])
        var top = TopK<ChunkKey>(k: 2)
        for (d, o) in [("x", 2), ("x", 0), ("x", 1)] { top.insert(score: 1, key: ChunkKey(documentID: d, ordinal: o)) }
        #expect(top.sorted().map(\.key.ordinal) == [0, 1])
    }

    @Test func replaceAndRemoveReuseSlots() throws {
        let p = PartitionIndex(dimension: 2, partition: 0)
        p.upsert(doc("a", "one", vector: [1, 0], dim: 2))
        p.upsert(doc("a", "two", vector: [0, 1], dim: 2))
        #expect(p.chunkCount == 1)
        #expect(try p.vectorSearch([0, 1], k: 5).map(\.text) == ["two"])
        p.remove("a")
        #expect(try p.vectorSearch([0, 1], k: 5).isEmpty)
        #expect(p.documentCount == 0)
    }
}

@Suite struct FusionTests {
    func hit(_ id: String) -> Hit { Hit(key: ChunkKey(documentID: id, ordinal: 0), score: 0, text: id, metadata: [:], partition: 0) }

    /// A fill-in list (a lexical embedder's) never reorders the main list, even
    /// 1,000 deep and ranked in reverse, and its own hits come after every one of
    /// the main list's.
    @Test func fillInWeightKeepsTheMainOrder() {
        let main = (0..<1000).map { hit("m\($0)") }
        let fill = main.reversed() + (0..<50).map { hit("v\($0)") }
        let fused = Fusion.reciprocalRank([Array(fill), main], weights: [Fusion.fillInWeight, 1], limit: 1050)
        #expect(fused.prefix(1000).map(\.key.documentID) == main.map(\.key.documentID))
        #expect(fused.dropFirst(1000).map(\.key.documentID) == (0..<50).map { "v\($0)" })
    }

    @Test func reciprocalRankFusionOrder() {
        // With k = Fusion.defaultK: x 1/(k+1) + 1/(k+3); y 1/(k+2) + 1/(k+1); z 1/(k+3); w 1/(k+2).
        let fused = Fusion.reciprocalRank([[hit("x"), hit("y"), hit("z")], [hit("y"), hit("w"), hit("x")]], limit: 4)
        #expect(fused.map(\.key.documentID) == ["y", "x", "w", "z"])
        let k = Fusion.defaultK
        #expect(abs(fused[0].score - (1 / (k + 2) + 1 / (k + 1))) < 1e-12)
        // A tie (same ranks swapped) breaks by id.
        let tie = Fusion.reciprocalRank([[hit("b"), hit("a")], [hit("a"), hit("b")]], limit: 2)
        #expect(tie.map(\.key.documentID) == ["a", "b"])
    }

    func scored(_ pairs: [(String, Double)]) -> [Hit] {
        pairs.map { var h = hit($0.0); h.score = $0.1; return h }
    }

    /// By hand: list 1 has mean 0.4125 and sd 0.29660, so a's z-score is
    /// 0.4875 / 0.29660 = 1.6436; list 2 has mean 2.225 and sd 1.17128, a's z is
    /// 0.575 / 1.17128 = 0.4909; a's fused score is their mean, 1.0673. Far ahead
    /// in the first list and close behind in the second, a comes first, where
    /// RRF puts b (second and first) ahead of it. d and e each miss one list and
    /// count as its lowest (z of d in list 1, of e in list 2): an exact tie, broken by id.
    @Test func distributionBasedFusionKeepsScoreGaps() {
        let first = scored([("a", 0.9), ("b", 0.35), ("c", 0.3), ("d", 0.1)])
        let second = scored([("b", 3.0), ("c", 2.9), ("a", 2.8), ("e", 0.2)])
        let fused = Fusion.distributionBased([first, second], limit: 5)
        #expect(fused.map(\.key.documentID) == ["a", "b", "c", "d", "e"])
        #expect(abs(fused[0].score - 1.0673) < 1e-4)
        #expect(fused[3].score == fused[4].score)
        #expect(Fusion.reciprocalRank([first, second], limit: 5).map(\.key.documentID) == ["b", "a", "c", "d", "e"])
        // A list's units do not matter: scaled and shifted, the same answer.
        let rescaled = second.map { h -> Hit in var h = h; h.score = h.score * 100 + 7; return h }
        let again = Fusion.distributionBased([first, rescaled], limit: 5)
        #expect(again.map(\.key.documentID) == fused.map(\.key.documentID))
        #expect(zip(again, fused).allSatisfy { abs($0.score - $1.score) < 1e-9 })
        // A list without spread says nothing: the other list alone orders.
        let flat = scored([("a", 1), ("b", 1), ("c", 1)])
        #expect(Fusion.distributionBased([flat, second], limit: 4).map(\.key.documentID) == ["b", "c", "a", "e"])
        #expect(Fusion.distributionBased([[], second], limit: 2).map(\.key.documentID) == ["b", "c"])
        #expect(Fusion.distributionBased([[], []], limit: 2).isEmpty)
    }
}

@Suite struct EmbedderTests {
    @Test func deterministicUnitVectorsThatReflectOverlap() async throws {
        let e = HashingEmbedder()
        let v = try await e.embed(["sqlite database busy timeout", "sqlite database busy timeout", "the weather in Paris is mild"])
        #expect(v[0] == v[1])
        #expect(abs(VectorMath.dot(v[0], v[0]) - 1) < 1e-5)
        let related = try await e.embed(["database timeout when sqlite is busy"])[0]
        #expect(VectorMath.dot(v[0], related) > VectorMath.dot(v[2], related) + 0.2)
        #expect(e.id == "hashing-v2-384")
    }

    @Test func tokenizerKeepsIdentifiersAndStems() {
        #expect(Tokenizer.terms("SQLITE_BUSY errors, The Files!") == ["sqlite_busy", "sqlite", "busy", "error", "file"])
    }
}

@Suite struct GeneratorTests {
    @Test func extractiveAnswerCitesSourcesInOrder() async throws {
        let g = ExtractiveGenerator()
        let sources = [
            GenerationSource(text: "Cats sleep a lot. The moon is bright.", documentID: "a"),
            GenerationSource(text: "Paris is the capital of France. It is large.", documentID: "b"),
        ]
        let answer = try await g.answer(question: "What is the capital of France?", sources: sources)
        #expect(answer.contains("Paris is the capital of France. [2]"))
        #expect(!answer.contains("moon"))
        var streamed = ""
        for try await t in g.generate(question: "What is the capital of France?", sources: sources) { streamed += t }
        #expect(streamed == answer)
        #expect(try await g.answer(question: "anything", sources: []) == ExtractiveGenerator.noAnswer)
    }

    /// Sentences end after . ! ? followed by whitespace (ASCII or Unicode) and at
    /// blank lines; whitespace runs, Unicode ones too, become one space.
    @Test func sentencesSplitOnBytesAsOnCharacters() {
        let text = "  First  line\n   wraps here.Next: e.g.x stays!\u{00A0}Third\u{3000}one? \r\nFour\n\nFive\u{2003}\u{2003}words.\u{2028}Café ‐ naïve."
        #expect(ExtractiveGenerator.sentences(text) == [
            "First line wraps here.Next: e.g.x stays!", "Third one?", "Four", "Five words.", "Café ‐ naïve.",
        ])
        #expect(ExtractiveGenerator.sentences(" \n\n ").isEmpty)
        #expect(ExtractiveGenerator.sentences("no end") == ["no end"])
    }

    /// Stream tokens are words with their trailing space, split on bytes for
    /// ASCII answers and on Characters otherwise, and always concatenate back.
    @Test func tokensAreWordsThatConcatenateToTheAnswer() {
        #expect(ExtractiveGenerator.tokens("a b  c") == ["a ", "b ", " ", "c"])
        #expect(ExtractiveGenerator.tokens("Café naïve [2] ") == ["Café ", "naïve ", "[2] "])
        #expect(ExtractiveGenerator.tokens("").isEmpty)
        for text in ["Paris is big. [1]", " two  spaces ", "end ", "Café  au lait [2]", "x", "e\u{301} b"] {
            let t = ExtractiveGenerator.tokens(text)
            #expect(t.joined() == text)
            #expect(t.allSatisfy { !$0.isEmpty } && t.dropLast().allSatisfy { $0.hasSuffix(" ") })
        }
    }

    /// Counting sentence terms on bytes never changes an answer: plurals (ies → y), underscores, case, stop-word-only
    /// sentences and non-ASCII text, against the same composition without it.
    @Test func screeningSentencesNeverChangesTheAnswer() {
        let g = ExtractiveGenerator()
        let texts = [
            "Queries are retried. The query planner runs. It is what it is. SQLITE_BUSY means the file is locked.",
            "Copies of the BUSY_TIMEOUT value. Entries expire; an entry lives an hour. Of the. Caches évictent les entrées.",
            "The Ｋelvin sign lower-cases to k. Parties and party lines. Boxes, box, and BOXES! Classes of class.",
            "To be or not to be. Nothing here matches. Übergrößen über alles. Tries, try, trying.",
        ]
        let questions = ["what queries are retried", "sqlite_busy timeout", "entry expiry", "kelvin party box", "class",
                         "to be", "größen", "try", "nothing matches at all zz", "copy entries", "the of and"]
        for q in questions {
            for rotate in 0..<texts.count {
                let sources = (0..<texts.count).map { GenerationSource(text: texts[($0 + rotate) % texts.count], documentID: "d\($0)") }
                #expect(g.compose(question: q, sources: sources, screen: true) == g.compose(question: q, sources: sources, screen: false), "\(q)")
            }
        }
    }
}

@Suite struct TokenizerTests {
    @Test func asciiFastPathAgreesWithUnicodePath() {
        // The same words with one non-ASCII character appended take the slow path.
        let ascii = "Set the busy_timeout, then RETRY: SQLITE_BUSY (code 5) -- _private_ words"
        let fast = Tokenizer.words(ascii)
        let slow = Tokenizer.words(ascii + " é")
        #expect(fast + ["é"] == slow)
        #expect(fast.contains("busy_timeout") && fast.contains("private") && fast.contains("5"))
        #expect(Tokenizer.words("Crème BRÛLÉE ΣΟΣ") == ["crème", "brûlée", "σοσ"])
    }
}

@Suite struct QuestionTermsTests {
    /// The tokenizer's byte path gives the terms its general path gives, and
    /// counting a sentence's terms on its bytes agrees with tokenising it, on
    /// random ASCII sentences built from the pieces the rules turn on: stop words,
    /// plural endings (ies, es, ss, us), underscores inside and around words,
    /// upper case, digits, punctuation.
    @Test func byteCountsAgreeWithTheTokenizer() {
        let pieces = ["the", "The", "IS", "of", "should", "queries", "Query", "entries", "entry", "boxes", "box", "classes",
                      "class", "bus", "buses", "status", "toes", "trees", "aies", "eies", "ties", "ty", "sqlite_busy",
                      "SQLITE_BUSY", "_private_", "__", "_", "a_b", "the_of", "x__y_", "busy", "timeout", "42", "v2s",
                      "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz_extra_longs", "s", "ss", "sss", "ies"]
        let separators = [" ", "  ", ", ", ". ", "-", "(", ")", ": ", "\t", "/", "'"]
        var rng = SplitMix64(seed: 16)
        for round in 0..<3_000 {
            let question = (0..<Int.random(in: 1...5, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined(separator: " ")
            let wanted = Set(Tokenizer.terms(question))
            let counter = QuestionTerms(wanted)
            var sentence = ""
            for _ in 0..<Int.random(in: 0...12, using: &rng) {
                sentence += pieces.randomElement(using: &rng)! + separators.randomElement(using: &rng)!
            }
            let terms = Tokenizer.terms(sentence)
            // A non-ASCII word at the end sends the whole text down the general path.
            #expect(Tokenizer.terms(sentence + " é") == terms + ["é"], "round \(round): \(sentence)")
            let expected = (terms: terms.count, matched: Set(terms.filter(wanted.contains)).count)
            let counted = counter.count(sentence)
            #expect(counted?.terms == expected.terms && counted?.matched == expected.matched, "round \(round): \(question) | \(sentence)")
        }
    }

    @Test func nonASCIIIsLeftToTheTokenizer() {
        #expect(QuestionTerms(["cafe"]).count("café au lait") == nil)
        #expect(QuestionTerms(["café"]).count("cafe au lait") == nil)
        #expect(QuestionTerms(Set((0..<65).map { "t\($0)" })).count("t1 t2") == nil)
        #expect(QuestionTerms(["entry", "box"]).count("Entries in BOXES, boxes and the box.")! == (terms: 4, matched: 2))
    }
}
