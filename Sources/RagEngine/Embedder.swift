import RagCore

/// Turns texts into fixed-size vectors. Implementations must be deterministic
/// for a given `id`: a collection records the id it was built with.
public protocol Embedder: Sendable {
    /// Identifies model and settings, e.g. `hashing-v2-384`.
    var id: String { get }
    var dimension: Int { get }
    /// Embeds a batch; the result has one L2-normalised vector per text.
    func embed(_ texts: [String]) async throws -> [[Float]]
    /// False when the vectors ignore letter case (the text is lower-cased first).
    var isCaseSensitive: Bool { get }
    /// True when the vectors only encode word overlap (no meaning): fused with
    /// BM25 they add noise, not recall, so queries default to keyword search.
    var isLexical: Bool { get }
}

extension Embedder {
    /// A model behind an API may see case: assume it does.
    public var isCaseSensitive: Bool { true }
    /// Models are semantic unless they say otherwise.
    public var isLexical: Bool { false }
}

/// The built-in offline embedder: signed feature hashing of word unigrams and
/// bigrams (stemmed, stop words dropped), sublinear term frequency, L2-normalised.
///
/// No network, no model files, and the same vector on every machine (FNV-1a, not
/// `Hasher`). It captures lexical overlap; it is not a semantic model. (v1 also
/// hashed character trigrams: on 1,000-character chunks their collisions in 384
/// dimensions drowned the signal, nDCG@10 0.05 vs 0.43 without them on the
/// development corpus.)
public struct HashingEmbedder: Embedder {
    public let dimension: Int
    public var id: String { "hashing-v2-\(dimension)" }
    public var isCaseSensitive: Bool { false }
    public var isLexical: Bool { true }

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
