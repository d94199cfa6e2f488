import Foundation
import RagEngine

/// Exact search alone, in process, on one core: ms per query over N × D floats,
/// next to the floor of reading the same bytes once (a plain SIMD sum).
enum SearchBench {
    static func run(vectors n: Int, dimension d: Int) throws {
        var rng = SplitMix64(seed: 1)
        let index = PartitionIndex(dimension: d, partition: 0)
        let int8 = PartitionIndex(dimension: d, partition: 0, int8: true)
        let perDoc = 10
        var docs = 0
        while docs * perDoc < n {
            let count = min(perDoc, n - docs * perDoc)
            let embeddings = (0..<count).map { _ in randomUnit(&rng, d) }
            let doc = PreparedDocument(id: "d\(docs)", metadata: ["g": .number(Double(docs % 10))], contentHash: 0,
                                       chunks: Array(repeating: "", count: count), embeddings: embeddings)
            index.upsert(doc)
            int8.upsert(doc)
            docs += 1
        }
        let queries = (0..<50).map { _ in randomUnit(&rng, d) }
        let bytes = Double(n * d * 4)
        // Warm up, then measure.
        _ = try index.vectorSearch(queries[0], k: 10)
        let swiftFloor = measure(repeats: 50) { index.sumAll() }
        let floor = measure(repeats: 50) { Float(index.sumFloor()) }
        var scratch: [Float] = []
        var qi = 0
        let scan = try measureThrowing(repeats: 50) { index.scanOnly(queries[qi % queries.count], into: &scratch); qi += 1 }
        let search = try measureThrowing(repeats: 50) { _ = try index.vectorSearch(queries[qi % queries.count], k: 10); qi += 1 }
        print(String(format: "exact search, %d x %d floats (%.1f MB), k=10, one core, kernel %@:", n, d, bytes / 1e6, VectorMath.kernel))
        print(String(format: "  C floor (sum over the bytes, %@):   %.2f ms  (%.1f GB/s)", VectorMath.kernel, floor * 1000, bytes / floor / 1e9))
        print(String(format: "  Swift SIMD16 sum (old floor):       %.2f ms  (%.2fx the C floor)", swiftFloor * 1000, swiftFloor / floor))
        print(String(format: "  C dot scan alone:                   %.2f ms  (%.2fx the C floor)", scan * 1000, scan / floor))
        print(String(format: "  exact search (scan + top-k):        %.2f ms/query  (%.2fx the C floor)", search * 1000, search / floor))
        let quantized = try measureThrowing(repeats: 50) { _ = try int8.vectorSearch(queries[qi % queries.count], k: 10); qi += 1 }
        var found = 0
        for q in queries {
            let exact = Set(try index.vectorSearch(q, k: 10).map(\.key))
            found += try int8.vectorSearch(q, k: 10).filter { exact.contains($0.key) }.count
        }
        print(String(format: "  int8 first pass + exact rescoring:  %.2f ms/query  (%.2fx the C floor), recall@10 %.4f against exact (%d queries)",
                     quantized * 1000, quantized / floor, Double(found) / Double(10 * queries.count), queries.count))
    }

    static func randomUnit(_ rng: inout SplitMix64, _ d: Int) -> [Float] {
        var v = (0..<d).map { _ in Float.random(in: -1...1, using: &rng) }
        VectorMath.normalize(&v)
        return v
    }

    /// Median seconds per run.
    static func measure(repeats: Int, _ body: () -> Float) -> Double {
        var sink: Float = 0
        var times: [Double] = []
        for _ in 0..<repeats {
            let s = DispatchTime.now().uptimeNanoseconds
            sink += body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9)
        }
        if sink == .infinity { print("") }
        return times.sorted()[times.count / 2]
    }

    static func measureThrowing(repeats: Int, _ body: () throws -> Void) rethrows -> Double {
        var times: [Double] = []
        for _ in 0..<repeats {
            let s = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9)
        }
        return times.sorted()[times.count / 2]
    }
}
