import ArgumentParser
import Foundation
import RagClient
import RagCore
import RagEngine
import RagServer

struct EvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Measure retrieval quality on queries with relevance judgments.",
        discussion: """
            QUERIES is JSONL: {"id", "text" (or "query"), "relevant_ids": [...], "reference_answer"?}. Each query \
            is run against the server (cache skipped); chunks are collapsed to documents (best chunk first) and \
            scored at each k: precision, recall, F1, hit rate, MRR and nDCG (binary relevance), plus a grounding \
            check of the answers (share of answer sentences supported by the source they cite). \
            --compare runs several configurations on the same queries: MODE[+mmr[:LAMBDA]], comma-separated.
            """)
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .shortAndLong, help: "Collection to evaluate.") var collection = "default"
    @Option(help: "Cut-offs, comma-separated.") var k = "1,3,5,10"
    @Option(help: "Configurations, e.g. vector,keyword,hybrid,hybrid+mmr:0.7") var compare = "hybrid"
    @Option(help: "Chunks fetched per query (documents are formed from them).") var depth = 50
    @Option(help: "Evaluate only the first N queries.") var limit: Int?
    @Option(help: "LLM-as-judge for queries with reference answers: openai or ollama.") var judge: String?
    @Option(name: .customLong("judge-url"), help: "Judge model server base URL.") var judgeURL: String?
    @Option(name: .customLong("judge-model"), help: "Judge model name.") var judgeModel: String?
    @Option(name: .customLong("judge-api-key-env"), help: "Environment variable with the judge's API key.") var judgeKeyEnv: String?
    @Argument(help: "JSONL file of queries.") var queries: String

    struct Line: Decodable {
        var id: String?
        var text: String?
        var query: String?
        var relevant_ids: [String]
        var reference_answer: String?
    }

    struct Configuration {
        var label: String
        var mode: SearchMode
        var rerank: Rerank?
    }

    func configurations() throws -> [Configuration] {
        try compare.split(separator: ",").map { spec in
            let parts = spec.split(separator: "+")
            guard let mode = SearchMode(rawValue: String(parts[0]).trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("unknown mode in --compare: \(spec)")
            }
            var rerank: Rerank?
            if parts.count > 1 {
                let r = parts[1].split(separator: ":")
                guard r[0] == "mmr" else { throw ValidationError("unknown reranker in --compare: \(spec)") }
                rerank = Rerank.with { $0.method = "mmr"; $0.lambda = r.count > 1 ? Double(r[1]) ?? 0.7 : 0.7 }
            }
            return Configuration(label: String(spec), mode: mode, rerank: rerank)
        }
    }

    func run() async throws {
        let cutoffs = k.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
        guard !cutoffs.isEmpty else { throw ValidationError("--k needs positive numbers") }
        guard let data = FileManager.default.contents(atPath: queries) else { throw failure("cannot read \(queries)") }
        var items: [Line] = []
        for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() where !line.allSatisfy(\.isWhitespace) {
            guard let item = try? JSONDecoder().decode(Line.self, from: Data(line.utf8)), item.text ?? item.query != nil else {
                throw failure("\(queries):\(n + 1): expected {text, relevant_ids}")
            }
            items.append(item)
        }
        if let limit { items = Array(items.prefix(limit)) }
        let configs = try configurations()
        var judgeModel: LLMJudge?
        if let judge {
            guard let flavor = HTTPChatGenerator.Flavor(rawValue: judge), let url = judgeURL, let model = self.judgeModel else {
                throw ValidationError("--judge openai|ollama needs --judge-url and --judge-model")
            }
            judgeModel = LLMJudge(model: HTTPChatGenerator(flavor: flavor, model: model, http: ProviderHTTP(baseURL: url, apiKeyEnvironment: judgeKeyEnv)))
        }
        let client = try connection.client()
        var report: [[String: Any]] = []
        try await runReporting {
            for config in configs {
                var perK: [Int: [RetrievalMetrics]] = [:]
                var grounding: [Double] = []
                var grades: [JudgeScore] = []
                var unparsed = 0
                var latency = 0.0
                var progress = Progress(total: items.count, label: config.label)
                for (i, item) in items.enumerated() {
                    let start = Date()
                    let r = try await client.query(item.text ?? item.query!, collection: collection, topK: max(depth, cutoffs.max()!),
                                                   mode: config.mode, noCache: true, rerank: config.rerank, timeout: connection.deadline)
                    latency += Date().timeIntervalSince(start)
                    let ranking = r.sources.map(\.documentID)
                    for c in cutoffs { perK[c, default: []].append(RetrievalMetrics.at(c, ranking: ranking, relevant: Set(item.relevant_ids))) }
                    grounding.append(Grounding.score(answer: r.answer, sources: r.sources.prefix(5).map(\.content)))
                    if let judgeModel, let reference = item.reference_answer {
                        if let g = try? await judgeModel.judge(question: item.text ?? item.query!, answer: r.answer, reference: reference) {
                            grades.append(g)
                        } else {
                            unparsed += 1
                        }
                    }
                    if !connection.json { progress.update(i + 1) }
                }
                let g = grounding.reduce(0, +) / Double(max(1, grounding.count))
                let meanGrade = { (f: (JudgeScore) -> Int) in grades.isEmpty ? 0 : Double(grades.map(f).reduce(0, +)) / Double(grades.count) }
                if !grades.isEmpty || unparsed > 0, !connection.json {
                    print(String(format: "\n%@ judge: accuracy %.2f, relevance %.2f, completeness %.2f (1-5) over %d answers, %d unreadable",
                                 config.label, meanGrade(\.accuracy), meanGrade(\.relevance), meanGrade(\.completeness), grades.count, unparsed))
                }
                if !connection.json {
                    print("\n\(config.label): \(items.count) queries, mean latency \(milliseconds(latency / Double(max(1, items.count)))), grounding \(String(format: "%.3f", g))")
                    print("   k  precision  recall     F1   hit rate    MRR   nDCG")
                }
                for c in cutoffs {
                    let m = RetrievalMetrics.mean(perK[c] ?? [])
                    if !connection.json {
                        print(String(format: "%4d     %.3f    %.3f  %.3f     %.3f   %.3f  %.3f", c, m.precision, m.recall, m.f1, m.hitRate, m.mrr, m.ndcg))
                    }
                    report.append(["config": config.label, "k": c, "precision": m.precision, "recall": m.recall, "f1": m.f1,
                                   "hit_rate": m.hitRate, "mrr": m.mrr, "ndcg": m.ndcg, "grounding": g, "queries": items.count])
                }
            }
        }
        if connection.json {
            let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}
