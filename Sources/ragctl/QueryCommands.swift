import ArgumentParser
import Foundation
import RagClient
import RagCore
import RagWire

struct QueryOptionsGroup: ParsableArguments {
    @Option(name: .shortAndLong, help: "Collection to search.") var collection = "default"
    @Option(name: .short, help: "Number of sources (1-1000).") var k = 5
    @Option(help: "Metadata filter, e.g. \"lang=en and year>=2020\" or \"section in [1, 8]\".") var filter: String?
    @Option(help: "vector, keyword or hybrid (default hybrid).") var mode: String?
    @Option(help: "User id (for experiments).") var user = ""

    func parsed() throws -> (MetadataFilter?, SearchMode?) {
        let f = try filter.map { text in
            do { return try FilterExpression.parse(text) } catch { throw ValidationError("bad --filter: \(RagError(from: error).message)") }
        }
        let m = try mode.map { name in
            guard let m = SearchMode(rawValue: name.lowercased()) else { throw ValidationError("--mode must be vector, keyword or hybrid") }
            return m
        }
        return (f, m)
    }
}

struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "query", abstract: "Ask a question; print the answer and its sources.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var options: QueryOptionsGroup
    @Flag(help: "Skip the cache.") var noCache = false
    @Argument(help: "The question.") var question: String

    func run() async throws {
        let (filter, mode) = try options.parsed()
        let client = try connection.client()
        try await runReporting {
            let r = try await client.query(question, collection: options.collection, topK: options.k, filter: filter, mode: mode,
                                           userID: options.user, noCache: noCache, timeout: connection.deadline)
            if connection.json { printJSON(r); return }
            print(r.answer)
            print("")
            printSources(r.sources)
            let t = r.timings
            print("\n\(milliseconds(r.processingTimeSeconds)) (embed \(milliseconds(t.embedSeconds)), search \(milliseconds(t.searchSeconds)), generate \(milliseconds(t.generateSeconds)))")
        }
    }
}

func printSources(_ sources: [Ragd_V1_Source]) {
    for (i, s) in sources.enumerated() {
        let meta = s.metadata.keys.sorted().prefix(4).map { k in "\(k)=\(metadataText(s.metadata[k]!))" }.joined(separator: " ")
        print(String(format: "[%d] %@  score %.4f  %@", i + 1, s.chunkID, s.score, meta))
        let preview = s.content.split(whereSeparator: \.isWhitespace).joined(separator: " ").prefix(160)
        print("    \(preview)")
    }
}

func metadataText(_ v: Ragd_V1_Value) -> String {
    switch v.kind {
    case .stringValue(let s): return s
    case .numberValue(let n): return n == n.rounded() ? String(Int64(n)) : String(n)
    case .boolValue(let b): return String(b)
    case nil: return "null"
    }
}

struct StreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stream", abstract: "Ask a question; print the answer as it is produced.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var options: QueryOptionsGroup
    @Argument(help: "The question.") var question: String

    func run() async throws {
        let (filter, mode) = try options.parsed()
        let client = try connection.client()
        try await runReporting {
            let events = try await client.stream(question, collection: options.collection, topK: options.k, filter: filter, mode: mode,
                                                 userID: options.user, timeout: connection.deadline)
            var sources: [Ragd_V1_Source] = []
            do {
                for try await e in events {
                    if connection.json { print(e.jsonText); continue }
                    switch e.event {
                    case .sources(let s): sources = s.sources
                    case .token(let t): FileHandle.standardOutput.write(Data(t.utf8))
                    case .done(let d):
                        print("\n")
                        printSources(sources)
                        print("\n\(milliseconds(d.processingTimeSeconds))")
                    case nil: break
                    }
                }
            } catch {
                throw RagError(from: error)
            }
        }
    }
}
