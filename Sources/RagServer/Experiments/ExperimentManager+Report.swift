import Foundation
import RagCore
import RagWire

extension ExperimentManager {
    /// Means compare with Welch's t-test once both sides have this many samples.
    static let minimumSamples = 30
    /// Rates compare with the z-test once each side has this many successes and failures.
    static let minimumEvents = 10

    public func report(_ name: String) throws(RagError) -> Ragd_V1_ExperimentReportResponse {
        let e = try get(name)
        let data = try store.data(name)
        var out = Ragd_V1_ExperimentReportResponse()
        out.experiment = e
        let control = data[e.variants[0].name] ?? ExperimentStore.VariantData()
        for v in e.variants {
            let d = data[v.name] ?? ExperimentStore.VariantData()
            var r = Ragd_V1_VariantReport()
            r.variant = v.name
            r.queries = UInt64(d.total.count)
            let series: [(String, [Double])] = [
                ("latency_total_seconds", d.total), ("latency_search_seconds", d.search), ("results", d.results),
                ("cache_hit", rates(d.cacheHits, d.total.count)), ("relevance", d.relevance),
                ("thumbs_up", rates(d.thumbsUp, d.thumbsTotal)),
            ]
            r.metrics = series.map { name, xs in
                let s = ExperimentStatistics.summary(xs)
                return Ragd_V1_MetricSummary.with {
                    $0.metric = name
                    $0.count = UInt64(s.count)
                    $0.mean = s.mean
                    $0.stddev = s.stddev
                    $0.min = s.min
                    $0.max = s.max
                    $0.p50 = s.p50
                    $0.p95 = s.p95
                }
            }
            if v.name != e.variants[0].name {
                r.versusControl = [
                    means("latency_total_seconds", control.total, d.total),
                    means("latency_search_seconds", control.search, d.search),
                    means("results", control.results, d.results),
                    means("relevance", control.relevance, d.relevance),
                    proportions("thumbs_up", control.thumbsUp, control.thumbsTotal, d.thumbsUp, d.thumbsTotal),
                    proportions("cache_hit", control.cacheHits, control.total.count, d.cacheHits, d.total.count),
                ]
            }
            out.variants.append(r)
        }
        return out
    }

    func rates(_ successes: Int, _ total: Int) -> [Double] {
        Array(repeating: 1.0, count: successes) + Array(repeating: 0.0, count: max(0, total - successes))
    }

    func means(_ metric: String, _ control: [Double], _ variant: [Double]) -> Ragd_V1_VariantComparison {
        var c = Ragd_V1_VariantComparison()
        c.metric = metric
        c.test = "welch_t"
        c.enoughData = control.count >= Self.minimumSamples && variant.count >= Self.minimumSamples
        guard let t = ExperimentStatistics.welch(control, variant) else {
            c.verdict = "not enough data: \(control.count) control and \(variant.count) variant samples (need at least 2 each, \(Self.minimumSamples) to judge)"
            c.pValue = 1
            return c
        }
        fill(&c, t)
        return c
    }

    func proportions(_ metric: String, _ sa: Int, _ na: Int, _ sb: Int, _ nb: Int) -> Ragd_V1_VariantComparison {
        var c = Ragd_V1_VariantComparison()
        c.metric = metric
        c.test = "two_proportion_z"
        c.enoughData = min(sa, na - sa, sb, nb - sb) >= Self.minimumEvents
        guard let t = ExperimentStatistics.twoProportion(successesA: sa, totalA: na, successesB: sb, totalB: nb) else {
            c.verdict = "not enough data: no observations yet"
            c.pValue = 1
            return c
        }
        fill(&c, t)
        return c
    }

    func fill(_ c: inout Ragd_V1_VariantComparison, _ t: ExperimentStatistics.TestResult) {
        c.difference = t.difference
        c.ciLow = t.ciLow
        c.ciHigh = t.ciHigh
        c.pValue = t.pValue
        let interval = String(format: "%+.4g (95%% CI %.4g to %.4g), p = %.3g", t.difference, t.ciLow, t.ciHigh, t.pValue)
        if !c.enoughData {
            c.verdict = "not enough data yet to judge: \(interval)"
        } else if t.pValue < 0.05 {
            c.verdict = "differs from the control: \(interval)"
        } else {
            c.verdict = "no significant difference from the control: \(interval)"
        }
    }
}
