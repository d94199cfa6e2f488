#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Retrieval quality of one ranked list against a set of relevant ids (binary
/// relevance). Duplicates in the ranking count once, at their first position.
public struct RetrievalMetrics: Sendable, Hashable {
    public var precision: Double
    public var recall: Double
    public var f1: Double
    /// 1 when any relevant id is in the top k.
    public var hitRate: Double
    /// Reciprocal rank of the first relevant id within the top k (0 if none).
    public var mrr: Double
    public var ndcg: Double

    public init(precision: Double, recall: Double, f1: Double, hitRate: Double, mrr: Double, ndcg: Double) {
        self.precision = precision
        self.recall = recall
        self.f1 = f1
        self.hitRate = hitRate
        self.mrr = mrr
        self.ndcg = ndcg
    }

    /// Metrics at `k`. Precision divides by k even when fewer results came back
    /// (missing results are misses). With no relevant ids every metric is 0.
    public static func at(_ k: Int, ranking: [String], relevant: Set<String>) -> RetrievalMetrics {
        precondition(k > 0)
        var seen = Set<String>()
        let unique = ranking.filter { seen.insert($0).inserted }
        let top = Array(unique.prefix(k))
        guard !relevant.isEmpty else { return RetrievalMetrics(precision: 0, recall: 0, f1: 0, hitRate: 0, mrr: 0, ndcg: 0) }
        let hits = top.filter(relevant.contains).count
        let precision = Double(hits) / Double(k)
        let recall = Double(hits) / Double(relevant.count)
        let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
        let firstRank = top.firstIndex(where: relevant.contains).map { $0 + 1 }
        var dcg = 0.0
        for (i, id) in top.enumerated() where relevant.contains(id) { dcg += 1 / log2(Double(i + 2)) }
        var ideal = 0.0
        for i in 0..<min(k, relevant.count) { ideal += 1 / log2(Double(i + 2)) }
        return RetrievalMetrics(precision: precision, recall: recall, f1: f1, hitRate: hits > 0 ? 1 : 0,
                                mrr: firstRank.map { 1 / Double($0) } ?? 0, ndcg: ideal > 0 ? dcg / ideal : 0)
    }

    /// The mean of several queries' metrics.
    public static func mean(_ all: [RetrievalMetrics]) -> RetrievalMetrics {
        guard !all.isEmpty else { return RetrievalMetrics(precision: 0, recall: 0, f1: 0, hitRate: 0, mrr: 0, ndcg: 0) }
        let n = Double(all.count)
        return RetrievalMetrics(
            precision: all.map(\.precision).reduce(0, +) / n, recall: all.map(\.recall).reduce(0, +) / n,
            f1: all.map(\.f1).reduce(0, +) / n, hitRate: all.map(\.hitRate).reduce(0, +) / n,
            mrr: all.map(\.mrr).reduce(0, +) / n, ndcg: all.map(\.ndcg).reduce(0, +) / n)
    }
}

/// Share of an answer's cited sentences whose words mostly (≥ 50 % of their
/// terms) appear in the source they cite: a cheap, model-free grounding check.
public enum Grounding {
    public static func score(answer: String, sources: [String]) -> Double {
        let sentences = segments(answer)
        guard !sentences.isEmpty else { return 0 }
        var supported = 0
        for s in sentences {
            let cites = citations(in: s).filter { $0 >= 1 && $0 <= sources.count }
            let terms = Set(Tokenizer.terms(s.replacingCitations()))
            guard !cites.isEmpty, !terms.isEmpty else { continue }
            if cites.contains(where: { n in Double(terms.intersection(Set(Tokenizer.terms(sources[n - 1]))).count) >= 0.5 * Double(terms.count) }) {
                supported += 1
            }
        }
        return Double(supported) / Double(sentences.count)
    }

    /// Sentences with the citations that follow them: "A. [1] B [2][3]. C." gives
    /// "A. [1]", "B [2][3].", "C.".
    static func segments(_ text: String) -> [String] {
        var out: [String] = []
        var current = ""
        func flush() {
            let t = current.trimmingCharacters(in: " ")
            if !t.isEmpty { out.append(t) }
            current = ""
        }
        let chars = Array(text)
        for (i, c) in chars.enumerated() {
            current.append(c)
            guard ".!?]".contains(c) else { continue }
            var j = i + 1
            while j < chars.count, chars[j] == " " { j += 1 }
            if j < chars.count, chars[j] == "[" { continue }  // citations follow: they belong here
            if c != "]", j == i + 1, j < chars.count { continue }  // "3.14", "e.g.x": not a sentence end
            flush()
        }
        flush()
        return out
    }

    static func citations(in s: String) -> [Int] {
        var out: [Int] = []
        var i = s.startIndex
        while let open = s[i...].firstIndex(of: "[") {
            guard let close = s[open...].firstIndex(of: "]") else { break }
            if let n = Int(s[s.index(after: open)..<close]) { out.append(n) }
            i = s.index(after: close)
        }
        return out
    }
}

extension String {
    func replacingCitations() -> String {
        var out = ""
        var skipping = false
        for c in self {
            if c == "[" { skipping = true; continue }
            if c == "]" { skipping = false; continue }
            if !skipping { out.append(c) }
        }
        return out
    }
}
