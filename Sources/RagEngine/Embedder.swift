import RagCore

/// Turns texts into fixed-size vectors. Implementations must be deterministic
/// for a given `id`: a collection records the id it was built with.
public protocol Embedder: Sendable {
    /// Identifies model and settings, e.g. `hashing-v1-384`.
    var id: String { get }
    var dimension: Int { get }
    /// Embeds a batch; the result has one L2-normalised vector per text.
    func embed(_ texts: [String]) async throws -> [[Float]]
}

/// The built-in offline embedder: signed feature hashing of word unigrams,
/// word bigrams and character trigrams, sublinear term frequency, L2-normalised.
///
/// No network, no model files, and the same vector on every machine (FNV-1a, not
/// `Hasher`). It captures lexical overlap, including partial-word overlap through
/// the trigrams; it is not a semantic model.
public struct HashingEmbedder: Embedder {
    public let dimension: Int
    public var id: String { "hashing-v1-\(dimension)" }

    public init(dimension: Int = 384) {
        precondition(dimension > 0)
        self.dimension = dimension
    }

    public func embed(_ texts: [String]) async throws -> [[Float]] {
        texts.map(embedOne)
    }

    public func embedOne(_ text: String) -> [Float] {
        var features: [UInt64: Float] = [:]
        let terms = Tokenizer.terms(text)
        func add(_ h: UInt64, _ w: Float) { features[h, default: 0] += w }
        for (i, t) in terms.enumerated() {
            add(StableHash.fnv1a(t), 1.0)
            if i > 0 { add(StableHash.fnv1a(terms[i - 1] + " " + t), 0.5) }
            let padded = Array(("<" + t + ">").unicodeScalars)
            if padded.count > 4 {
                for j in 0...(padded.count - 3) {
                    var s = String.UnicodeScalarView()
                    s.append(contentsOf: padded[j..<(j + 3)])
                    add(StableHash.fnv1a("#" + String(s)), 0.25)
                }
            }
        }
        var v = [Float](repeating: 0, count: dimension)
        for (h, w) in features {
            let tf = 1 + log(w)  // sublinear: repeated words count less
            let mixed = h ^ (h >> 29)
            let index = Int(mixed % UInt64(dimension))
            v[index] += (h >> 63) == 1 ? -tf : tf
        }
        VectorMath.normalize(&v)
        return v
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
