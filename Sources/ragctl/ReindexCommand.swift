import ArgumentParser
import Foundation
import RagClient
import RagCore
import RagWire

struct ReindexCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reindex", abstract: "Re-chunk and re-embed a collection on the server, from its kept source texts.",
        discussion: """
            Runs as a job. The new index is built beside the old one: queries are answered from the old one and writes \
            go to both until the new one is complete; then the collection switches to it at once and the old one is deleted. \
            The embedder is the server's (start the server with the --embedder you want); --chunk-size becomes the \
            collection's chunking for later writes too. Waits with a progress bar unless --no-wait.
            """)
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .shortAndLong, help: "Collection.") var collection = "default"
    @Option(help: "Embedder to build with; it must be the server's (default: the server's).") var embedder = ""
    @Option(name: .customLong("chunk-size"), help: "Characters per chunk (default: the collection's chunking).") var chunkSize = 0
    @Option(name: .customLong("chunk-overlap"), help: "Characters of overlap (with --chunk-size).") var chunkOverlap = 0
    @Option(help: "Vector index to rebuild with: exact, int8, hnsw or auto (default: the collection's).") var index = ""
    @Flag(name: .customLong("no-wait"), help: "Print the job id and return.") var noWait = false

    func run() async throws {
        let client = try connection.client()
        var failed = false
        try await runReporting {
            let submitted = try await client.submitReindexJob(collection: collection, embedder: embedder, chunkSize: chunkSize,
                                                              chunkOverlap: chunkOverlap, index: index, timeout: connection.deadline)
            if noWait {
                print(connection.json ? submitted.jsonText : submitted.id)
                return
            }
            let j = try await JobsCommand.wait(for: submitted.id, client, label: "reindex \(collection)", showProgress: !connection.json)
            if connection.json { print(j.jsonText) }
            failed = j.state != "succeeded"
            guard !failed else {
                if !connection.json { print(JobsCommand.describe(j)) }
                return
            }
            if !connection.json, let r = try? Ragd_V1_ReindexResponse(serializedBytes: j.result) {
                let chunks = r.chunkSize == 0 ? "default chunking" : "chunks of \(r.chunkSize) (overlap \(r.chunkOverlap))"
                print("reindexed \(r.collection): \(r.documents) documents with \(r.embedder), \(chunks); embedded \(r.reembedded), "
                      + "without a kept source \(r.withoutSource), changed by writes meanwhile \(r.skipped)")
            }
        }
        if failed { throw ExitCode(1) }
    }
}
