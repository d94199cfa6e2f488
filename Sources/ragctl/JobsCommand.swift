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
            var spec = Ragd_V1_JobSpec()
            spec.maxRetries = UInt32(retries)
            var parts: [[Ragd_V1_Document]] = []
            if let query {
                spec.query = Ragd_V1_QueryRequest.with { $0.collection = collection; $0.query = query }
            } else {
                let docs = try DocumentReader.read(paths)
                guard !docs.isEmpty else { throw ValidationError("no documents to index") }
                var part: [Ragd_V1_Document] = []
                var bytes = 0
                for d in docs {
                    let w = Ragd_V1_Document.with { $0.id = d.id; $0.text = d.text; $0.metadata = wireMetadata(d.metadata) }
                    let size = (try? w.serializedBytes() as [UInt8])?.count ?? d.text.utf8.count
                    if !part.isEmpty && bytes + size > partBytes { parts.append(part); part = []; bytes = 0 }
                    part.append(w)
                    bytes += size
                }
                parts.append(part)
                spec.index = Ragd_V1_IndexRequest.with { $0.collection = collection; $0.documents = parts[0] }
            }
            let client = try connection.client()
            try await runReporting {
                var r = try await client.call(.submitJob, Ragd_V1_SubmitJobRequest.with { $0.spec = spec; $0.more = parts.count > 1 },
                                              as: Ragd_V1_SubmitJobResponse.self, timeout: connection.deadline)
                for (i, part) in parts.enumerated().dropFirst() {
                    let request = Ragd_V1_SubmitJobRequest.with {
                        $0.appendTo = r.job.id
                        $0.more = i < parts.count - 1
                        $0.spec.index = Ragd_V1_IndexRequest.with { $0.documents = part }
                    }
                    r = try await client.call(.submitJob, request, as: Ragd_V1_SubmitJobResponse.self, timeout: connection.deadline)
                }
                print(connection.json ? r.job.jsonText : r.job.id)
            }
        }
    }

    struct Status: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let r = try await client.call(.getJob, Ragd_V1_GetJobRequest.with { $0.id = id }, as: Ragd_V1_GetJobResponse.self, timeout: connection.deadline)
                print(connection.json ? r.job.jsonText : JobsCommand.describe(r.job))
            }
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Only jobs in this state.") var state = ""
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let r = try await client.call(.listJobs, Ragd_V1_ListJobsRequest.with { $0.state = state }, as: Ragd_V1_ListJobsResponse.self, timeout: connection.deadline)
                if connection.json { print(r.jsonText); return }
                for j in r.jobs { print(JobsCommand.describe(j)) }
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String
        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                let r = try await client.call(.cancelJob, Ragd_V1_CancelJobRequest.with { $0.id = id }, as: Ragd_V1_CancelJobResponse.self, timeout: connection.deadline)
                print(JobsCommand.describe(r.job))
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
                var progress: Progress?
                while true {
                    let j = try await client.call(.getJob, Ragd_V1_GetJobRequest.with { $0.id = id }, as: Ragd_V1_GetJobResponse.self, timeout: connection.deadline).job
                    if progress == nil { progress = Progress(total: Int(j.progressTotal), label: j.kind) }
                    if !connection.json { progress?.update(Int(j.progressDone)) }
                    if ["succeeded", "failed", "cancelled"].contains(j.state) {
                        print(connection.json ? j.jsonText : JobsCommand.describe(j))
                        failed = j.state != "succeeded"
                        return
                    }
                    try await Task.sleep(for: .milliseconds(300))
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}
