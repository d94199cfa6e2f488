import ArgumentParser
import Foundation
import RagClient
import RagCore
import RagWire

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "Asynchronous index and query jobs.",
        subcommands: [Submit.self, Status.self, List.self, Cancel.self, Wait.self])

    static func describe(_ j: Ragd_V1_Job) -> String {
        var s = "\(j.id)  \(j.kind)  \(j.state)  attempts \(j.attempts)  progress \(j.progressDone)/\(j.progressTotal)"
        if !j.worker.isEmpty { s += "  worker \(j.worker) (\(j.backend))" }
        if !j.backoffSeconds.isEmpty { s += "  backoffs " + j.backoffSeconds.map { String(format: "%.2fs", $0) }.joined(separator: ",") }
        for e in j.errors { s += "\n    \(e)" }
        return s
    }

    /// Waits for a job to finish, drawing its progress bar (label: the job's kind).
    static func wait(for id: String, _ client: RagClient, label: String?, showProgress: Bool) async throws(RagError) -> Ragd_V1_Job {
        var progress: Progress?
        return try await client.waitForJob(id, every: .milliseconds(300)) { j in
            if progress == nil { progress = Progress(total: Int(j.progressTotal), label: label ?? j.kind) }
            if showProgress { progress?.update(Int(j.progressDone)) }
        }
    }

    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Submit an index job (files/folders) or a query job (--query).",
            discussion: "A large index job is uploaded in parts of about --part-bytes each (the job waits as \"staging\" until the last part).")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .shortAndLong) var collection = "default"
        @Option(help: "Submit a query job with this question instead of indexing.") var query: String?
        @Option(help: "Retries after the first attempt (0: the server default).") var retries = 0
        @Option(name: .customLong("part-bytes"), help: "Approximate size of one uploaded part (default 4 MiB, below the server's frame limit).") var partBytes = 4 << 20
        @Argument(help: "Files or folders to index.") var paths: [String] = []

        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let job: Ragd_V1_Job
                if let query {
                    job = try await client.submitQueryJob(.with { $0.collection = collection; $0.query = query }, maxRetries: retries, timeout: connection.deadline)
                } else {
                    let docs = try DocumentReader.read(paths)
                    guard !docs.isEmpty else { throw RagError.invalidArgument("no documents to index") }
                    job = try await client.submitIndexJob(docs, collection: collection, maxRetries: retries, partBytes: partBytes, timeout: connection.deadline)
                }
                print(connection.json ? job.jsonText : job.id)
            }
        }
    }

    struct Status: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let j = try await client.job(id, timeout: connection.deadline)
                print(connection.json ? j.jsonText : JobsCommand.describe(j))
            }
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Only jobs in this state.") var state = ""
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let jobs = try await client.jobs(state: state, timeout: connection.deadline)
                if connection.json { print(Ragd_V1_ListJobsResponse.with { $0.jobs = jobs }.jsonText); return }
                for j in jobs { print(JobsCommand.describe(j)) }
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                print(JobsCommand.describe(try await client.cancelJob(id, timeout: connection.deadline)))
            }
        }
    }

    struct Wait: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Wait for a job to finish, with a progress bar; exit 1 unless it succeeded.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String
        func run() async throws {
            let client = try connection.client()
            var failed = false
            try await runReporting {
                let j = try await JobsCommand.wait(for: id, client, label: nil, showProgress: !connection.json)
                print(connection.json ? j.jsonText : JobsCommand.describe(j))
                failed = j.state != "succeeded"
            }
            if failed { throw ExitCode(1) }
        }
    }
}
