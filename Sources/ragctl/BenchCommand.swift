import ArgumentParser
import Foundation
import RagClient
import RagCore
import RagEngine

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a running server (index + queries), or exact search alone (--search-only).")
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .shortAndLong, help: "Collection to create for the benchmark.") var collection = "bench"
    @Option(help: "Synthetic documents to index.") var docs = 2000
    @Option(help: "Run queries for this many seconds (cycling through --queries questions) instead of once through them.") var seconds: Double?
    @Option(help: "Queries to run.") var queries = 500
    @Option(help: "Concurrent queries.") var concurrency = 8
    @Option(help: "Documents per Index call.") var batch = 64
    @Option(name: .customLong("index-concurrency"), help: "Index calls in flight at once.") var indexConcurrency = 1
    @Option(help: "vector, keyword or hybrid.") var mode = "hybrid"
    @Flag(help: "Only the in-process exact-search benchmark (no server).") var searchOnly = false
    @Option(name: .customLong("embed-only"), help: "Only measure the local MiniLM embedder from this model directory (chunks/s, in process).") var embedOnly: String?
    @Option(help: "With --embed-only or --generate-only: a JSONL corpus whose texts are chunked (1000/100).") var corpus: String?
    @Flag(name: .customLong("generate-only"), help: "Only measure the extractive generator in process (--docs answers of 5 chunks).") var generateOnly = false
    @Flag(help: "Measure the query cache: a pass of misses, then the same queries again (hits), then warm QPS.") var cache = false
    @Option(help: "Vectors for --search-only.") var vectors = 100_000
    @Option(help: "Dimension for --search-only.") var dimension = 384
    @Option(help: "With --search-only: exact (flat float32 and int8 first pass), hnsw, or hnsw-int8 (a walk over int8 codes, rescored) (clustered synthetic vectors, or --base).") var index = "exact"
    @Option(help: "With --index hnsw: base vectors (.fvecs); without it, --vectors clustered synthetic vectors.") var base: String?
    @Option(name: .customLong("query-vectors"), help: "With --base: query vectors (.fvecs).") var queryVectors: String?
    @Option(help: "With --base: ground truth (.ivecs); without it, exact search here.") var truth: String?
    @Option(help: "With --index hnsw: links per node.") var m = 16
    @Option(name: .customLong("ef-construction"), help: "With --index hnsw: candidates kept while linking.") var efConstruction = 200
    @Option(help: "With --index hnsw: comma-separated ef values to measure.") var ef = "16,32,64,128,256"

    func run() async throws {
        if searchOnly, index == "hnsw" || index == "hnsw-int8" {
            let efs = ef.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !efs.isEmpty, efs.allSatisfy({ $0 > 0 }) else { throw ValidationError("--ef takes positive integers, e.g. 16,32,64") }
            return try ANNBench.run(base: base, queries: queryVectors, truth: truth, vectors: vectors, dimension: dimension,
                                    m: m, efConstruction: efConstruction, quantized: index == "hnsw-int8", efs: efs, k: 10)
        }
        guard index == "exact" else { throw ValidationError("--index is exact, hnsw or hnsw-int8") }
        if searchOnly { return try SearchBench.run(vectors: vectors, dimension: dimension) }
        if let dir = embedOnly { return try await EmbedBench.run(directory: dir, corpus: corpus, count: docs) }
        if generateOnly { return try GenerateBench.run(corpus: corpus, answers: docs) }
        guard let m = SearchMode(rawValue: mode) else { throw ValidationError("bad --mode") }
        let client = try connection.client()
        try await runReporting {
            // Batches are made as they are sent, in order from one generator, so
            // millions of documents never sit in this process at once.
            let corpus = SyntheticCorpus(count: docs, batch: batch)
            let t0 = Date()
            let calls = LatencyRecorder()
            let chunks = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<max(1, indexConcurrency) {
                    group.addTask {
                        var n = 0
                        while let documents = corpus.next() {
                            let s = Date()
                            n += Int(try await client.index(documents, collection: collection, timeout: connection.deadline).chunks)
                            calls.add(Date().timeIntervalSince(s))
                        }
                        return n
                    }
                }
                return try await group.reduce(0, +)
            }
            var rng = corpus.generatorAfterTheLastDocument()
            let indexSeconds = Date().timeIntervalSince(t0)
            if docs > 0 {
                let c = calls.sorted()
                func p(_ q: Double) -> Double { c[min(c.count - 1, Int(q * Double(c.count)))] * 1000 }
                print(String(format: "index: %d docs (%d chunks) in %.2f s = %.0f docs/s, %.0f chunks/s (batch %d, %d calls in flight); "
                             + "per call p50 %.1f ms, p99 %.1f ms", docs, chunks, indexSeconds, Double(docs) / indexSeconds, Double(chunks) / indexSeconds,
                             batch, indexConcurrency, p(0.5), p(0.99)))
            }
            guard queries > 0 else { return }
            let questions = (0..<queries).map { _ in SyntheticText.document(&rng, words: 6) }
            if cache { return try await cacheBench(client, questions: questions, mode: m) }
            let latencies = LatencyRecorder()
            let q0 = Date()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<concurrency {
                    group.addTask {
                        var i = worker
                        let end = seconds.map { q0.addingTimeInterval($0) }
                        while end.map({ Date() < $0 }) ?? (i < questions.count) {
                            let s = Date()
                            _ = try await client.query(questions[i % questions.count], collection: collection, topK: 10, mode: m, noCache: true,
                                                       timeout: connection.deadline)
                            latencies.add(Date().timeIntervalSince(s))
                            i += concurrency
                        }
                    }
                }
                try await group.waitForAll()
            }
            let qSeconds = Date().timeIntervalSince(q0)
            let l = latencies.sorted()
            func p(_ q: Double) -> Double { l[min(l.count - 1, Int(q * Double(l.count)))] * 1000 }
            print(String(format: "query (%@, k=10, concurrency %d): %d queries in %.2f s = %.0f QPS; p50 %.2f ms, p95 %.2f ms, p99 %.2f ms",
                         mode, concurrency, l.count, qSeconds, Double(l.count) / qSeconds, p(0.5), p(0.95), p(0.99)))
        }
    }
}

extension BenchCommand {
    func cacheBench(_ client: RagClient, questions: [String], mode: SearchMode) async throws {
        func pass(_ label: String) async throws -> [String: Int] {
            var levels: [String: Int] = [:]
            var times: [Double] = []
            for q in questions {
                let s = Date()
                let r = try await client.query(q, collection: collection, topK: 10, mode: mode, timeout: connection.deadline)
                times.append(Date().timeIntervalSince(s))
                levels[r.cached ? r.cacheLevel : "miss", default: 0] += 1
            }
            times.sort()
            print(String(format: "%@: p50 %.3f ms, p99 %.3f ms over %d queries  %@", label, times[times.count / 2] * 1000,
                         times[min(times.count - 1, Int(0.99 * Double(times.count)))] * 1000, times.count, levels.description))
            return levels
        }
        _ = try await pass("first pass (misses)")
        _ = try await pass("second pass (cached)")
        let recorder = LatencyRecorder()
        let t0 = Date()
        let rounds = 5
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<concurrency {
                group.addTask {
                    var i = w
                    while i < questions.count * rounds {
                        let s = Date()
                        _ = try await client.query(questions[i % questions.count], collection: collection, topK: 10, mode: mode, timeout: connection.deadline)
                        recorder.add(Date().timeIntervalSince(s))
                        i += concurrency
                    }
                }
            }
            try await group.waitForAll()
        }
        let n = questions.count * rounds
        print(String(format: "warm cache: %d repeated queries, concurrency %d: %.0f QPS", n, concurrency, Double(n) / Date().timeIntervalSince(t0)))
    }
}

/// The benchmark's synthetic documents (`bench-0`, `bench-1`, …), made a
/// batch at a time by whichever sender asks next; the same texts as making
/// them all up front from one generator.
final class SyntheticCorpus: @unchecked Sendable {
    private let lock = NSLock()
    private var rng = SplitMix64(seed: 42)
    private var made = 0
    private let count: Int
    private let batch: Int

    init(count: Int, batch: Int) {
        self.count = count
        self.batch = max(1, batch)
    }

    /// The next batch, or nil once all `count` documents are made.
    func next() -> [RagDocument]? {
        lock.lock()
        defer { lock.unlock() }
        guard made < count else { return nil }
        let end = min(made + batch, count)
        defer { made = end }
        return (made..<end).map { i in
            RagDocument(id: "bench-\(i)", text: SyntheticText.document(&rng, words: 160), metadata: ["n": .number(Double(i % 10))])
        }
    }

    /// The generator's state after the documents made so far (once all are
    /// sent, the queries are drawn from it).
    func generatorAfterTheLastDocument() -> SplitMix64 {
        lock.lock()
        defer { lock.unlock() }
        return rng
    }
}

final class LatencyRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Double] = []
    func add(_ v: Double) { lock.lock(); values.append(v); lock.unlock() }
    func sorted() -> [Double] { lock.lock(); defer { lock.unlock() }; return values.sorted() }
}


enum SyntheticText {
    static let vocabulary: [String] = {
        var rng = SplitMix64(seed: 7)
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        return (0..<5000).map { _ in String((0..<Int.random(in: 3...9, using: &rng)).map { _ in letters.randomElement(using: &rng)! }) }
    }()

    /// Zipf-like word choice, so some words are common and most are rare.
    static func document<R: RandomNumberGenerator>(_ rng: inout R, words: Int) -> String {
        (0..<words).map { _ in
            let u = Double.random(in: 0..<1, using: &rng)
            return vocabulary[min(vocabulary.count - 1, Int(pow(Double(vocabulary.count), u)) - 1)]
        }.joined(separator: " ")
    }
}
