import Foundation

/// The statistics of experiment analysis: summaries, Welch's t-test for means
/// and a two-proportion z-test for rates, with 95% confidence intervals.
/// Pure functions, checked against scipy in the tests.
public enum ExperimentStatistics {
    public struct Summary: Sendable, Equatable {
        public var count: Int
        public var mean, stddev, min, max, p50, p95: Double
    }

    /// Sample standard deviation (n − 1); percentiles by linear interpolation (numpy's default).
    public static func summary(_ xs: [Double]) -> Summary {
        guard !xs.isEmpty else { return Summary(count: 0, mean: 0, stddev: 0, min: 0, max: 0, p50: 0, p95: 0) }
        let n = Double(xs.count)
        let mean = xs.reduce(0, +) / n
        let variance = xs.count > 1 ? xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / (n - 1) : 0
        let sorted = xs.sorted()
        return Summary(count: xs.count, mean: mean, stddev: variance.squareRoot(), min: sorted.first!, max: sorted.last!,
                       p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95))
    }

    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        let pos = q * Double(sorted.count - 1)
        let lo = Int(pos.rounded(.down)), hi = Swift.min(lo + 1, sorted.count - 1)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - Double(lo))
    }

    public struct TestResult: Sendable, Equatable {
        public var difference, ciLow, ciHigh, pValue: Double
        public var statistic, degreesOfFreedom: Double
    }

    /// Welch's t-test of mean(b) − mean(a), two-sided, with a 95% CI (Welch–Satterthwaite df).
    public static func welch(_ a: [Double], _ b: [Double]) -> TestResult? {
        guard a.count >= 2, b.count >= 2 else { return nil }
        let sa = summary(a), sb = summary(b)
        let va = sa.stddev * sa.stddev / Double(a.count), vb = sb.stddev * sb.stddev / Double(b.count)
        let se = (va + vb).squareRoot()
        let diff = sb.mean - sa.mean
        guard se > 0 else { return TestResult(difference: diff, ciLow: diff, ciHigh: diff, pValue: diff == 0 ? 1 : 0, statistic: .infinity, degreesOfFreedom: .infinity) }
        let df = (va + vb) * (va + vb) / (va * va / Double(a.count - 1) + vb * vb / Double(b.count - 1))
        let t = diff / se
        let p = 2 * studentTSurvival(abs(t), df: df)
        let crit = studentTQuantile(0.975, df: df)
        return TestResult(difference: diff, ciLow: diff - crit * se, ciHigh: diff + crit * se, pValue: Swift.min(1, p), statistic: t, degreesOfFreedom: df)
    }

    /// Two-proportion z-test of rate(b) − rate(a): pooled standard error for the
    /// p-value, unpooled for the 95% CI.
    public static func twoProportion(successesA: Int, totalA: Int, successesB: Int, totalB: Int) -> TestResult? {
        guard totalA > 0, totalB > 0 else { return nil }
        let pa = Double(successesA) / Double(totalA), pb = Double(successesB) / Double(totalB)
        let pooled = Double(successesA + successesB) / Double(totalA + totalB)
        let sePooled = (pooled * (1 - pooled) * (1 / Double(totalA) + 1 / Double(totalB))).squareRoot()
        let se = (pa * (1 - pa) / Double(totalA) + pb * (1 - pb) / Double(totalB)).squareRoot()
        let diff = pb - pa
        let z = sePooled > 0 ? diff / sePooled : 0
        let p = sePooled > 0 ? erfc(abs(z) / 2.0.squareRoot()) : 1
        return TestResult(difference: diff, ciLow: diff - 1.959964 * se, ciHigh: diff + 1.959964 * se, pValue: p, statistic: z, degreesOfFreedom: .infinity)
    }

    /// P(T > t) for Student's t with `df` degrees of freedom, through the
    /// regularised incomplete beta function: P(T > t) = I_{df/(df+t²)}(df/2, 1/2) / 2.
    public static func studentTSurvival(_ t: Double, df: Double) -> Double {
        if df.isInfinite { return erfc(t / 2.0.squareRoot()) / 2 }
        let x = df / (df + t * t)
        let tail = regularizedBeta(x, a: df / 2, b: 0.5) / 2
        return t >= 0 ? tail : 1 - tail
    }

    /// The `p` quantile of Student's t (bisection on the CDF; p in (0.5, 1)).
    public static func studentTQuantile(_ p: Double, df: Double) -> Double {
        var lo = 0.0, hi = 1000.0
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if 1 - studentTSurvival(mid, df: df) < p { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    /// I_x(a, b) by its continued fraction (Numerical Recipes' betacf, modified Lentz).
    static func regularizedBeta(_ x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        if x > (a + 1) / (a + b + 2) { return 1 - regularizedBeta(1 - x, a: b, b: a) }
        let lnFront: Double = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log(1 - x)
        let tiny = 1e-300
        let qab = a + b, qap = a + 1, qam = a - 1
        var c = 1.0
        var d = 1 - qab * x / qap
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for i in 1...500 {
            let m = Double(i), m2 = 2 * m
            var aa: Double = m * (b - m) * x / ((qam + m2) * (a + m2))
            d = 1 + aa * d
            if abs(d) < tiny { d = tiny }
            c = 1 + aa / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
            d = 1 + aa * d
            if abs(d) < tiny { d = tiny }
            c = 1 + aa / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-15 { break }
        }
        return exp(lnFront) * h / a
    }
}
