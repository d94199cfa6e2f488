#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Okapi BM25 with Lucene's non-negative idf.
public enum BM25 {
    public static let k1 = 1.2
    public static let b = 0.75

    /// idf = ln(1 + (N − df + 0.5) / (df + 0.5))
    @inlinable
    public static func idf(documentFrequency df: Int, count n: Int) -> Double {
        log(1 + (Double(n - df) + 0.5) / (Double(df) + 0.5))
    }

    /// One term's contribution for a chunk of length `length`.
    @inlinable
    public static func termScore(tf: Int, length: Int, averageLength: Double, idf: Double) -> Double {
        let tf = Double(tf)
        let norm = averageLength > 0 ? Double(length) / averageLength : 1
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * norm))
    }
}
