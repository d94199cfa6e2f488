import ArgumentParser
import Foundation
import RagClient
import RagCore
import RagWire
import SwiftProtobuf

struct ExperimentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiments", abstract: "A/B experiments over retrieval configurations.",
        subcommands: [Create.self, List.self, Stop.self, Report.self, Feedback.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create (and start) an experiment from a JSON file.",
            discussion: """
                The file is a ragd.v1.Experiment in protobuf JSON, e.g. {"name": "chunking", "collection": "kb", "variants": [\
                {"name": "control", "ratio": 0.5}, {"name": "small", "ratio": 0.5, "config": {"chunking": \
                {"name": "small", "chunkSize": 500, "chunkOverlap": 50}, "rerank": {"method": "mmr"}}}]}
                """)
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "JSON file.") var file: String

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: file) else { throw failure("cannot read \(file)") }
            let e: Ragd_V1_Experiment
            do { e = try ExperimentsCommand.experiment(fromJSON: data) } catch { throw failure("\(file): not a valid experiment: \(error)") }
            let client = try connection.client()
            try await runReporting {
                let r = try await client.call(.createExperiment, Ragd_V1_CreateExperimentRequest.with { $0.experiment = e },
                                              as: Ragd_V1_CreateExperimentResponse.self, timeout: connection.deadline)
                print(connection.json ? r.experiment.jsonText : "experiment \(r.experiment.name) running on \(r.experiment.collection)")
            }
        }
    }

    /// The wire form is protobuf JSON; people write `"mode": "keyword"`, so the
    /// short (any case) spellings of SearchMode are accepted as well.
    static func experiment(fromJSON data: Data) throws -> Ragd_V1_Experiment {
        var object = try JSONSerialization.jsonObject(with: data)
        func rewrite(_ value: inout Any) {
            if var dict = value as? [String: Any] {
                for (k, var v) in dict {
                    if k == "mode", let s = v as? String, !s.uppercased().hasPrefix("SEARCH_MODE_") {
                        v = "SEARCH_MODE_" + s.uppercased()
                    } else {
                        rewrite(&v)
                    }
                    dict[k] = v
                }
                value = dict
            } else if var list = value as? [Any] {
                for i in list.indices { rewrite(&list[i]) }
                value = list
            }
        }
        rewrite(&object)
        return try Ragd_V1_Experiment(jsonUTF8Data: try JSONSerialization.data(withJSONObject: object))
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let r = try await client.call(.listExperiments, Ragd_V1_ListExperimentsRequest(), as: Ragd_V1_ListExperimentsResponse.self, timeout: connection.deadline)
                if connection.json { print(r.jsonText); return }
                for e in r.experiments {
                    print("\(e.name)\t\(e.collection)\t\(e.state)\t" + e.variants.map { "\($0.name) \(Int($0.ratio * 100))%" }.joined(separator: ", "))
                }
            }
        }
    }

    struct Stop: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                _ = try await client.call(.stopExperiment, Ragd_V1_StopExperimentRequest.with { $0.name = name }, as: Ragd_V1_StopExperimentResponse.self, timeout: connection.deadline)
                print("stopped \(name): every query now gets the control")
            }
        }
    }

    struct Report: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let r = try await client.call(.experimentReport, Ragd_V1_ExperimentReportRequest.with { $0.name = name },
                                              as: Ragd_V1_ExperimentReportResponse.self, timeout: connection.deadline)
                if connection.json { print(r.jsonText); return }
                print("experiment \(r.experiment.name) on \(r.experiment.collection) (\(r.experiment.state))")
                for v in r.variants {
                    print("\n\(v.variant): \(v.queries) queries")
                    print("  metric                    count       mean     stddev        min        max        p50        p95")
                    for m in v.metrics where m.count > 0 {
                        // Padded in Swift: Foundation on Linux ignores the width of %@.
                        let name = m.metric.count >= 24 ? m.metric : m.metric + String(repeating: " ", count: 24 - m.metric.count)
                        print("  " + name + String(format: " %6llu %10.4g %10.4g %10.4g %10.4g %10.4g %10.4g", m.count, m.mean, m.stddev, m.min, m.max, m.p50, m.p95))
                    }
                    for c in v.versusControl { print("  vs control, \(c.metric) (\(c.test)): \(c.verdict)") }
                }
            }
        }
    }

    struct Feedback: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The query_id of an answer.") var queryID: String
        @Option(help: "up or down.") var thumbs: String?
        @Option(help: "A graded relevance score.") var relevance: Double?
        func run() async throws {
            var r = Ragd_V1_FeedbackRequest()
            r.queryID = queryID
            if let thumbs { r.thumbsUp = thumbs == "up" } else if let relevance { r.relevance = relevance } else {
                throw ValidationError("give --thumbs up|down or --relevance N")
            }
            let client = try connection.client()
            try await runReporting {
                let resp = try await client.call(.feedback, r, as: Ragd_V1_FeedbackResponse.self, timeout: connection.deadline)
                print("recorded for \(resp.experiment) / \(resp.variant)")
            }
        }
    }
}
