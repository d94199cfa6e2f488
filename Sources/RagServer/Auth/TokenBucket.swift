import Synchronization

/// A token bucket that may go into debt: a request larger than the burst is
/// admitted when the bucket is full, and the next ones wait until the debt is
/// paid back. So a batch of 5,000 documents under a 100/s limit goes through,
/// and the key then waits 50 s, instead of never being admitted.
final class TokenBucket: Sendable {
    let rate: Double
    let burst: Double
    private let state: Mutex<(tokens: Double, at: ContinuousClock.Instant)>

    init(rate: Double, burst: Double? = nil) {
        self.rate = rate
        self.burst = max(1, burst ?? rate)
        state = Mutex((self.burst, .now))
    }

    /// Takes `cost` tokens, or says how long until it could.
    func take(_ cost: Double, now: ContinuousClock.Instant = .now) -> Duration? {
        state.withLock { s in
            let elapsed = Double((now - s.at).components.seconds) + Double((now - s.at).components.attoseconds) / 1e18
            s.tokens = min(burst, s.tokens + max(0, elapsed) * rate)
            s.at = now
            let needed = min(cost, burst)
            guard s.tokens >= needed else { return .milliseconds(max(1, Int64(((needed - s.tokens) / rate * 1000).rounded(.up)))) }
            s.tokens -= cost
            return nil
        }
    }
}
