import ArgumentParser
import Foundation
import RagEngine

/// `ragctl bench --search-only --index hnsw`: builds an HNSW graph in process
/// and prints, per `ef`, recall@10 against exact search, QPS on one thread and
/// latency percentiles. Data: `.fvecs`/`.ivecs` files in the ANN-benchmarks
/// format (base, queries, ground truth), so a peer measures exactly the same
/// vectors; or a clustered synthetic set (centres, σ = 1/√d, normalised).
enum ANNBench {
    struct DataSet {
        var base: [[Float]]
        var queries: [[Float]]
        var truth: [[Int32]]?
    }

    static func run(base: String?, queries: String?, truth: String?, vectors: Int, dimension: Int,
                    m: Int, efConstruction: Int, quantized: Bool, efs: [Int], k: Int) throws {
        var data: DataSet
        if let base {
            guard let queries else { throw ValidationError("--base needs --query-vectors") }
            data = DataSet(base: try readVecs(base, as: Float.self), queries: try readVecs(queries, as: Float.self),
                           truth: try truth.map { try readVecs($0, as: Int32.self) })
        } else {
            data = clustered(vectors: vectors, dimension: dimension, centres: 1_000, queries: 200, seed: 1)
        }
        let n = data.base.count, d = data.base.first?.count ?? 0
        let graph = HNSWGraph(dimension: d, parameters: .init(m: m, efConstruction: efConstruction, quantized: quantized))
        let buildStart = DispatchTime.now().uptimeNanoseconds
        for v in data.base { graph.add(v) }
        let build = Double(DispatchTime.now().uptimeNanoseconds - buildStart) / 1e9
        // Ground truth from the files, else by exact search here.
        let truth = data.truth.map { $0.map { Array($0.prefix(k)) } } ?? data.queries.map { q in graph.exactSearch(q, k: k).map(\.id) }
        print(String(format: "%@ (Ragd, Swift), %d x %d, M=%d, efConstruction=%d, k=%d, one thread, kernel %@: built in %.1f s (%.0f vectors/s)",
                     quantized ? "hnsw-int8" : "hnsw", n, d, m, efConstruction, k, VectorMath.kernel, build, Double(n) / build))
        // A quantized graph is measured with both walks, turn about, so that the
        // machine's drift weighs on both alike.
        let walks: [(String, ([Float], Int) -> [Scored])] = quantized
            ? [("int8", { graph.search($0, k: k, ef: $1) }), ("float", { graph.searchFloats($0, k: k, ef: $1) })]
            : [("", { graph.search($0, k: k, ef: $1) })]
        print("      ef   recall@10        QPS   p50 ms   p99 ms" + (quantized ? "   walk" : ""))
        for ef in efs {
            for (name, search) in walks {
                for q in data.queries.prefix(20) { _ = search(q, ef) }  // warm up
                var found = 0
                var latencies: [Double] = []
                let start = DispatchTime.now().uptimeNanoseconds
                for (q, expected) in zip(data.queries, truth) {
                    let t = DispatchTime.now().uptimeNanoseconds
                    let hits = search(q, ef)
                    latencies.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
                    let want = Set(expected)
                    found += hits.filter { want.contains($0.id) }.count
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                latencies.sort()
                func p(_ x: Double) -> Double { latencies[min(latencies.count - 1, Int(x * Double(latencies.count)))] }
                print(String(format: "  %6d   %9.4f  %9.0f   %6.3f   %6.3f   %@", ef, Double(found) / Double(k * data.queries.count),
                             Double(data.queries.count) / seconds, p(0.5), p(0.99), name))
            }
        }
    }

    /// Clustered synthetic vectors (`ClusteredVectors`); queries drawn the same way.
    static func clustered(vectors: Int, dimension d: Int, centres: Int, queries: Int, seed: UInt64) -> DataSet {
        var data = ClusteredVectors(dimension: d, centres: centres, seed: seed)
        return DataSet(base: data.points(vectors), queries: data.points(queries), truth: nil)
    }

    /// Reads an `.fvecs` (Float) or `.ivecs` (Int32) file: per vector, its
    /// dimension as a little-endian int32, then that many 4-byte values.
    static func readVecs<T>(_ path: String, as: T.Type) throws -> [[T]] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
        var out: [[T]] = []
        try data.withUnsafeBytes { raw in
            var at = 0
            while at + 4 <= raw.count {
                let d = Int(raw.loadUnaligned(fromByteOffset: at, as: Int32.self))
                guard d > 0, at + 4 + 4 * d <= raw.count else { throw ValidationError("\(path) is not a vecs file (bad record at byte \(at))") }
                out.append((0..<d).map { raw.loadUnaligned(fromByteOffset: at + 4 + 4 * $0, as: T.self) })
                at += 4 + 4 * d
            }
        }
        return out
    }
}
