import Foundation
import RagClient
import RagCore
import RagServer
import RagTesting
import RagWire
import Testing

func experiment(_ name: String, collection: String = "kb", _ variants: [(String, Double, Ragd_V1_VariantConfig?)]) -> Ragd_V1_Experiment {
    Ragd_V1_Experiment.with { e in
        e.name = name
        e.collection = collection
        e.variants = variants.map { v in Ragd_V1_Variant.with { $0.name = v.0; $0.ratio = v.1; if let c = v.2 { $0.config = c } } }
    }
}

extension RagClient {
    func create(_ e: Ragd_V1_Experiment) async throws(RagError) -> Ragd_V1_Experiment {
        try await call(.createExperiment, Ragd_V1_CreateExperimentRequest.with { $0.experiment = e }, as: Ragd_V1_CreateExperimentResponse.self, timeout: hangGuard).experiment
    }

    func report(_ name: String) async throws(RagError) -> Ragd_V1_ExperimentReportResponse {
        try await call(.experimentReport, Ragd_V1_ExperimentReportRequest.with { $0.name = name }, as: Ragd_V1_ExperimentReportResponse.self, timeout: hangGuard)
    }

    func feedback(_ queryID: String, relevance: Double? = nil, thumbsUp: Bool? = nil) async throws(RagError) -> Ragd_V1_FeedbackResponse {
        var r = Ragd_V1_FeedbackRequest()
        r.queryID = queryID
        if let relevance { r.relevance = relevance }
        if let thumbsUp { r.thumbsUp = thumbsUp }
        return try await call(.feedback, r, as: Ragd_V1_FeedbackResponse.self, timeout: hangGuard)
    }
}

@Suite struct AssignmentTests {
    @Test func splitMatchesRatiosWithinOnePoint() {
        let e = experiment("split", [("control", 0.5), ("b", 0.3), ("c", 0.2)].map { ($0.0, $0.1, nil) }).with(state: "running")
        var counts: [String: Int] = [:]
        for i in 0..<100_000 { counts[ExperimentManager.assign(experiment: e, userID: "user-\(i)").name, default: 0] += 1 }
        #expect(abs(Double(counts["control"]!) / 100_000 - 0.5) < 0.01)
        #expect(abs(Double(counts["b"]!) / 100_000 - 0.3) < 0.01)
        #expect(abs(Double(counts["c"]!) / 100_000 - 0.2) < 0.01)
        // No user id: the control.
        #expect(ExperimentManager.assign(experiment: e, userID: "").name == "control")
    }

    @Test func welchAndProportionsMatchScipy() async throws {
        var g = Lcg(seed: 3)
        let a = (0..<40).map { _ in Double(g.next() % 1000) / 100 }
        let b = (0..<55).map { _ in Double(g.next() % 1000) / 100 + 0.8 }
        let t = try #require(ExperimentStatistics.welch(a, b))
        let z = try #require(ExperimentStatistics.twoProportion(successesA: 45, totalA: 120, successesB: 70, totalB: 130))
        let script = """
            import json, sys
            from scipy import stats
            import numpy as np
            a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
            r = stats.ttest_ind(b, a, equal_var=False)
            ci = r.confidence_interval(0.95)
            p1, p2 = 45 / 120, 70 / 130
            pool = (45 + 70) / 250
            se = (pool * (1 - pool) * (1 / 120 + 1 / 130)) ** 0.5
            zp = 2 * stats.norm.sf(abs((p2 - p1) / se))
            print(json.dumps([float(r.statistic), float(r.pvalue), float(ci.low), float(ci.high), zp,
                              float(np.percentile(a, 95)), float(np.std(a, ddof=1))]))
            """
        let out = try await run(["python3", "-c", script, "\(a)", "\(b)"])
        #expect(out.status == 0, "\(out.errors)")
        let ref = try JSONDecoder().decode([Double].self, from: Data(out.output.utf8))
        #expect(abs(t.statistic - ref[0]) < 1e-9)
        #expect(abs(t.pValue - ref[1]) < 1e-9)
        #expect(abs(t.ciLow - ref[2]) < 1e-6 && abs(t.ciHigh - ref[3]) < 1e-6)
        #expect(abs(z.pValue - ref[4]) < 1e-9)
        let s = ExperimentStatistics.summary(a)
        #expect(abs(s.p95 - ref[5]) < 1e-9 && abs(s.stddev - ref[6]) < 1e-9)
    }
}

extension Ragd_V1_Experiment {
    func with(state: String) -> Ragd_V1_Experiment { var e = self; e.state = state; return e }
}

@Suite(.serialized) struct ExperimentServerTests {
    @Test func validationUniquenessAndOneRunningPerCollection() async throws {
        try await withRagServer { client, _ in
            for bad in [experiment("r", [("a", 0.5, nil), ("b", 0.4, nil)]), experiment("r", []),
                        experiment("r", [("a", 0.5, nil), ("a", 0.5, nil)]), experiment("", [("a", 1, nil)]),
                        experiment("r", collection: "../x", [("a", 1, nil)])] {
                do { _ = try await client.create(bad); Issue.record("expected INVALID_ARGUMENT") } catch { #expect(RagError(from: error).code == .invalidArgument) }
            }
            _ = try await client.create(experiment("one", [("a", 0.6, nil), ("b", 0.4005, nil)]))  // within ± 0.001
            do { _ = try await client.create(experiment("one", collection: "other", [("a", 1, nil)])); Issue.record("dup") } catch { #expect(RagError(from: error).code == .alreadyExists) }
            do { _ = try await client.create(experiment("two", [("a", 1, nil)])); Issue.record("second") } catch { #expect(RagError(from: error).code == .failedPrecondition) }
            do { _ = try await client.feedback("no-such-query", relevance: 1); Issue.record("feedback") } catch { #expect(RagError(from: error).code == .notFound) }
        }
    }

    @Test func assignmentIsStableAcrossProcessesAndStopServesControl() async throws {
        let dirs = [makeTemporaryDirectory(), makeTemporaryDirectory()]
        defer { dirs.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        var servers: [RagdProcess] = []
        for d in dirs { servers.append(try await RagdProcess.launch(dataDirectory: d)) }
        let clients = servers.map { $0.client() }
        var k3 = Ragd_V1_VariantConfig()
        k3.topK = 3
        for c in clients {
            _ = try await c.index(Fixtures.documents, collection: "kb")
            _ = try await c.create(experiment("topk", [("control", 0.5, nil), ("three", 0.5, k3)]))
        }
        var seen = Set<String>()
        for i in 0..<40 {
            let a = try await clients[0].query("sqlite busy", collection: "kb", userID: "u\(i)")
            let b = try await clients[1].query("sqlite busy", collection: "kb", userID: "u\(i)")
            #expect(a.variant == b.variant && a.experiment == "topk")
            #expect(a.sources.count == (a.variant == "three" ? 3 : 5))
            seen.insert(a.variant)
        }
        #expect(seen == ["control", "three"])
        #expect(try await clients[0].query("sqlite busy", collection: "kb").variant == "control")
        _ = try await clients[0].call(.stopExperiment, Ragd_V1_StopExperimentRequest.with { $0.name = "topk" }, as: Ragd_V1_StopExperimentResponse.self, timeout: hangGuard)
        for i in 0..<10 {
            let r = try await clients[0].query("sqlite busy", collection: "kb", userID: "u\(i)")
            #expect(r.variant == "control" && r.sources.count == 5)
        }
        // Restart: the experiment and its state persist.
        await servers[0].stop()
        let again = try await RagdProcess.launch(dataDirectory: dirs[0])
        let c = again.client()
        #expect(try await c.query("sqlite busy", collection: "kb", userID: "u1").variant == "control")
        let report = try await c.report("topk")
        #expect(report.experiment.state == "stopped")
        #expect(report.variants.map(\.queries).reduce(0, +) == 41)  // queries after the stop are not recorded
        for cl in clients + [c] { await cl.close() }
    }

    @Test func chunkingVariantsSearchTheirOwnIndexAndReportStatistics() async throws {
        try await withRagServer { client, _ in
            var small = Ragd_V1_VariantConfig()
            small.chunking = Ragd_V1_ChunkingProfile.with { $0.name = "small"; $0.chunkSize = 80; $0.chunkOverlap = 0 }
            _ = try await client.create(experiment("chunks", [("control", 0.5, nil), ("small", 0.5, small)]))
            _ = try await client.index(Fixtures.documents, collection: "kb")
            var byVariant: [String: [Double]] = [:]
            for i in 0..<80 {
                let r = try await client.query("how does sqlite retry when busy", collection: "kb", userID: "user\(i)", noCache: true)
                if r.variant == "small" {
                    #expect(r.sources.allSatisfy { $0.content.count <= 80 })
                } else {
                    #expect(r.sources.contains { $0.content.count > 80 })
                }
                // Feedback: a score that depends on the variant, to compare against scipy.
                let score = (r.variant == "small" ? 0.6 : 0.4) + Double(i % 7) / 20
                _ = try await client.feedback(r.queryID, relevance: score)
                byVariant[r.variant, default: []].append(score)
                _ = try await client.feedback(r.queryID, thumbsUp: i % 3 != 0)  // kept beside the relevance score
            }
            let report = try await client.report("chunks")
            let smallReport = try #require(report.variants.first { $0.variant == "small" })
            #expect(smallReport.queries == UInt64(byVariant["small"]!.count))
            let cmp = try #require(smallReport.versusControl.first { $0.metric == "latency_total_seconds" })
            #expect(cmp.test == "welch_t" && cmp.pValue >= 0 && cmp.pValue <= 1)
            #expect(!cmp.verdict.isEmpty)
            // The relevance comparison matches scipy's Welch test on the scores we sent.
            let rel = try #require(smallReport.versusControl.first { $0.metric == "relevance" })
            let py = try await run(["python3", "-c", """
                import json, sys
                from scipy import stats
                r = stats.ttest_ind(json.loads(sys.argv[2]), json.loads(sys.argv[1]), equal_var=False)
                ci = r.confidence_interval(0.95)
                print(json.dumps([float(r.pvalue), float(ci.low), float(ci.high)]))
                """, "\(byVariant["control"]!)", "\(byVariant["small"]!)"])
            let ref = try JSONDecoder().decode([Double].self, from: Data(py.output.utf8))
            #expect(abs(rel.pValue - ref[0]) < 1e-9 && abs(rel.ciLow - ref[1]) < 1e-6 && abs(rel.ciHigh - ref[2]) < 1e-6)
            #expect(abs(rel.difference - 0.2) < 0.05)
            #expect(rel.enoughData == (byVariant["small"]!.count >= 30 && byVariant["control"]!.count >= 30))
            let thumbs = try #require(smallReport.metrics.first { $0.metric == "thumbs_up" })
            #expect(thumbs.count == smallReport.queries)
            // Deleting removes the document from every profile's index.
            _ = try await client.delete(["sqlite"], collection: "kb")
            for i in 0..<10 {
                let r = try await client.query("SQLITE_BUSY", collection: "kb", mode: .keyword, userID: "user\(i)", noCache: true)
                #expect(!r.sources.contains { $0.documentID == "sqlite" }, "\(r.variant)")
            }
        }
    }
}
