import RagCore
import RagEngine
import Testing

@Suite struct RetrievalMetricsTests {
    /// Ranking a x b y c, relevant {a, b, c}:
    /// @1: P 1, R 1/3, F1 0.5, hit 1, MRR 1, nDCG 1.
    /// @3: P 2/3, R 2/3, F1 2/3; DCG = 1 + 1/log2(4) = 1.5, IDCG = 1 + 1/log2 3 + 1/2 = 2.13093 → nDCG 0.703918.
    /// @5: P 3/5, R 1, F1 0.75; DCG = 1.5 + 1/log2 6 = 1.886853 / 2.13093 → 0.885460.
    @Test func handComputedValues() {
        let ranking = ["a", "x", "b", "y", "c"]
        let rel: Set = ["a", "b", "c"]
        let m1 = RetrievalMetrics.at(1, ranking: ranking, relevant: rel)
        #expect(m1.precision == 1 && abs(m1.recall - 1.0 / 3) < 1e-12 && abs(m1.f1 - 0.5) < 1e-12 && m1.mrr == 1 && m1.ndcg == 1)
        let m3 = RetrievalMetrics.at(3, ranking: ranking, relevant: rel)
        #expect(abs(m3.precision - 2.0 / 3) < 1e-12 && abs(m3.recall - 2.0 / 3) < 1e-12 && abs(m3.f1 - 2.0 / 3) < 1e-12)
        #expect(abs(m3.ndcg - 0.703918) < 1e-6)
        let m5 = RetrievalMetrics.at(5, ranking: ranking, relevant: rel)
        #expect(abs(m5.precision - 0.6) < 1e-12 && m5.recall == 1 && abs(m5.f1 - 0.75) < 1e-12)
        #expect(abs(m5.ndcg - 0.885460) < 1e-6)
    }

    @Test func edgeCases() {
        // First relevant at rank 3: MRR 1/3, nDCG@3 = 0.5 / 1.
        let late = RetrievalMetrics.at(3, ranking: ["x", "y", "a"], relevant: ["a"])
        #expect(abs(late.mrr - 1.0 / 3) < 1e-12 && abs(late.ndcg - 0.5) < 1e-12 && late.hitRate == 1)
        // No relevant documents: all zero, not NaN.
        let none = RetrievalMetrics.at(5, ranking: ["a"], relevant: [])
        #expect(none == RetrievalMetrics(precision: 0, recall: 0, f1: 0, hitRate: 0, mrr: 0, ndcg: 0))
        // Fewer results than k: precision still divides by k.
        let short = RetrievalMetrics.at(10, ranking: ["a"], relevant: ["a", "b"])
        #expect(short.precision == 0.1 && short.recall == 0.5)
        // Duplicates (several chunks of one document) count once, at the first position.
        let dup = RetrievalMetrics.at(2, ranking: ["a", "a", "b"], relevant: ["b"])
        #expect(dup.precision == 0.5 && dup.mrr == 0.5)
        // Nothing relevant retrieved.
        let miss = RetrievalMetrics.at(3, ranking: ["x", "y"], relevant: ["a"])
        #expect(miss.mrr == 0 && miss.ndcg == 0 && miss.hitRate == 0 && miss.f1 == 0)
        let mean = RetrievalMetrics.mean([late, miss])
        #expect(abs(mean.mrr - 1.0 / 6) < 1e-12)
    }

    @Test func groundingCountsSupportedCitedSentences() {
        let sources = ["SQLite returns SQLITE_BUSY when the database is locked.", "Cats sleep sixteen hours a day."]
        #expect(Grounding.score(answer: "SQLite returns SQLITE_BUSY when locked. [1]", sources: sources) == 1)
        #expect(Grounding.score(answer: "SQLite returns SQLITE_BUSY when locked. [2]", sources: sources) == 0)
        #expect(Grounding.score(answer: "SQLite returns SQLITE_BUSY. [1] Dogs bark loudly at night. [2] Cats sleep. [2]", sources: sources) == 2.0 / 3)
        #expect(Grounding.score(answer: "Uncited claim about SQLite.", sources: sources) == 0)
    }
}

@Suite struct MMRTests {
    func hit(_ id: String, _ score: Double) -> Hit { Hit(key: ChunkKey(documentID: id, ordinal: 0), score: score, text: id, metadata: [:], partition: 0) }

    @Test func nearDuplicatesGiveWayToNewInformation() {
        // a and a2 are the same vector; b is different but slightly less relevant.
        let candidates = [hit("a", 1.0), hit("a2", 0.99), hit("b", 0.9)]
        let vectors: [[Float]] = [[1, 0], [1, 0], [0, 1]]
        #expect(MMR.rerank(candidates, vectors: vectors, lambda: 0.7, k: 2).map(\.key.documentID) == ["a", "b"])
        // λ = 1 is plain relevance order.
        #expect(MMR.rerank(candidates, vectors: vectors, lambda: 1, k: 3).map(\.key.documentID) == ["a", "a2", "b"])
        #expect(MMR.rerank(candidates, vectors: vectors, lambda: 0.5, k: 10).count == 3)
    }
}

@Suite struct JudgeParserTests {
    @Test func readsJSONWhereverTheModelPutsIt() {
        let plain = #"{"accuracy": 4, "relevance": 5, "completeness": 3, "reason": "ok"}"#
        #expect(LLMJudge.parse(plain) == JudgeScore(accuracy: 4, relevance: 5, completeness: 3, reason: "ok"))
        let fenced = "Sure! Here is my grade:\n```json\n{\"accuracy\": \"4\", \"relevance\": 5.0, \"completeness\": 2, \"reason\": \"mentions {x} and \\\"y\\\"\"}\n```\nHope it helps."
        #expect(LLMJudge.parse(fenced) == JudgeScore(accuracy: 4, relevance: 5, completeness: 2, reason: "mentions {x} and \"y\""))
        // A first object that is not a grade is skipped; out-of-range scores are clamped.
        let two = #"Context {"note": 1} then {"accuracy": 9, "relevance": 0, "completeness": 3}"#
        #expect(LLMJudge.parse(two) == JudgeScore(accuracy: 5, relevance: 1, completeness: 3, reason: ""))
        #expect(LLMJudge.parse("no json here") == nil)
        #expect(LLMJudge.parse(#"{"accuracy": "high", "relevance": 3, "completeness": 3}"#) == nil)
        #expect(LLMJudge.parse("{unclosed") == nil)
    }
}
