import Foundation

extension Duration {
    /// The duration in seconds, as a Double.
    public var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
    /// Whole milliseconds (rounded down), as wire fields and Redis want them.
    public var inMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
    /// Whole microseconds (rounded down).
    public var inMicroseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }

    /// Exponential backoff with jitter: `base · 2^retry · U(jitter)`, for the
    /// `retry`-th retry (0 for the first).
    public static func backoff(base: Duration, retry: Int, jitter: ClosedRange<Double>) -> Duration {
        .seconds(base.inSeconds * pow(2, Double(retry)) * Double.random(in: jitter))
    }
}
