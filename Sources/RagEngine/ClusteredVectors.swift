import Foundation

/// Clustered unit vectors for benchmarks and tests of approximate search:
/// random unit centres, and points that are a centre plus Gaussian noise of
/// σ = 1/√d, normalised. (Uniformly random vectors have no neighbourhoods, so
/// they defeat every graph index and say nothing about real embeddings.)
public struct ClusteredVectors {
    public let dimension: Int
    public let centres: [[Float]]
    private var rng: SplitMix64

    /// Centres from `seed`; points from `pointSeed` when given (other point
    /// sets around the same centres), else from where the centres' stream ends.
    public init(dimension: Int, centres: Int, seed: UInt64, pointSeed: UInt64? = nil) {
        self.dimension = dimension
        var g = SplitMix64(seed: seed)
        var made: [[Float]] = []
        for _ in 0..<centres {
            var v: [Float] = []
            for _ in 0..<dimension { v.append(Self.gaussian(&g)) }
            made.append(Self.unit(v))
        }
        self.centres = made
        rng = pointSeed.map { SplitMix64(seed: $0 &+ 0x5EED) } ?? g
    }

    /// The next `count` points, each around a centre drawn at random.
    public mutating func points(_ count: Int) -> [[Float]] {
        let sigma = 1 / Float(dimension).squareRoot()
        return (0..<count).map { _ in
            let centre = centres[Int.random(in: 0..<centres.count, using: &rng)]
            return Self.unit(centre.map { $0 + sigma * Self.gaussian(&rng) })
        }
    }

    /// A standard normal sample (Box–Muller).
    static func gaussian(_ rng: inout SplitMix64) -> Float {
        let u1 = max(Double.random(in: 0..<1, using: &rng), 1e-300), u2 = Double.random(in: 0..<1, using: &rng)
        return Float(sqrt(-2 * log(u1)) * cos(2 * .pi * u2))
    }

    static func unit(_ v: [Float]) -> [Float] {
        var v = v
        VectorMath.normalize(&v)
        return v
    }
}
