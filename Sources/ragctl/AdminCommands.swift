import ArgumentParser
import Foundation
import RagClient
import RagCore
import RagWire

struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Show collection counts, query counts and latency percentiles.")
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .shortAndLong, help: "Only this collection.") var collection = ""

    func run() async throws {
        let client = try connection.client()
        try await runReporting {
            let s = try await client.stats(collection: collection, timeout: connection.deadline)
            if connection.json { printJSON(s); return }
            print("ragd \(s.version), up \(Int(s.uptimeSeconds)) s, \(s.openConnections) connections, \(s.inFlightCalls) calls in flight")
            if !s.embedder.isEmpty {
                print("embedder \(s.embedder)" + (s.lexicalEmbedder ? " (lexical: hybrid ranks by BM25, vectors only fill in)" : ""))
            }
            print("queries: \(s.queriesTotal) (\(s.queryErrors) errors)")
            for l in s.latency {
                print("  \(l.component.padding(toLength: 9, withPad: " ", startingAt: 0)) n=\(l.count)  p50 \(milliseconds(l.p50Seconds))  p95 \(milliseconds(l.p95Seconds))  p99 \(milliseconds(l.p99Seconds))")
            }
            let k = s.cache
            print(String(format: "cache: %@, L2 %@; hits %llu (L1 %llu, L2 %llu), misses %llu, hit rate %.1f%%, %llu entries, %.1f MiB, %llu evictions, %llu errors",
                         k.enabled ? "on" : "off", k.l2Backend, k.hits, k.l1Hits, k.l2Hits, k.misses, k.hitRate * 100, k.entries,
                         Double(k.bytesUsed) / 1_048_576, k.evictions, k.errors))
            print("  pipeline runs \(k.pipelineRuns), coalesced \(k.coalesced); query embeddings: \(k.embeddingHits) hits, \(k.embeddingMisses) misses")
            if !s.queues.isEmpty {
                print("work queues: " + s.queues.map { "\($0.name) \($0.busy)/\($0.workers) busy, \($0.waiting) waiting, \($0.completed) done" }.joined(separator: "; "))
            }
            for e in s.experiments {
                print("experiment \(e.experiment.name) (\(e.experiment.state)) on \(e.experiment.collection): "
                    + e.variants.map { "\($0.variant) \($0.queries) queries" }.joined(separator: ", ") + "  (ragctl experiments report \(e.experiment.name))")
            }
            for c in s.collections {
                print("collection \(c.name): \(c.documents) documents, \(c.chunks) chunks, \(c.embedder), index \(c.index)")
                for p in c.partitions { print("  partition \(p.partition): \(p.documents) documents, \(p.chunks) chunks" + (p.index.isEmpty ? "" : ", \(p.index)")) }
            }
        }
    }
}

struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "health", abstract: "Check that the server is serving.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let client = try connection.client()
        try await runReporting {
            let h = try await client.health(timeout: connection.deadline)
            if connection.json { printJSON(h); return }
            print("\(h.status) (ragd \(h.version), role \(h.role), up \(Int(h.uptimeSeconds)) s\(h.embedder.isEmpty ? "" : ", embedder \(h.embedder)"))")
        }
    }
}

struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete documents by id.")
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .shortAndLong, help: "Collection.") var collection = "default"
    @Argument(help: "Document ids.") var ids: [String]

    func run() async throws {
        let client = try connection.client()
        try await runReporting {
            let r = try await client.delete(ids, collection: collection, timeout: connection.deadline)
            if connection.json { printJSON(r); return }
            print("deleted \(r.deleted)" + (r.notFound.isEmpty ? "" : "; not found: \(r.notFound.joined(separator: ", "))"))
        }
    }
}

struct CollectionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "collections", abstract: "List collections.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let client = try connection.client()
        try await runReporting {
            let cs = try await client.listCollections(timeout: connection.deadline)
            if connection.json { printJSON(Ragd_V1_ListCollectionsResponse.with { $0.collections = cs }); return }
            if cs.isEmpty { print("no collections") }
            for c in cs { print("\(c.name)\t\(c.documents) documents\t\(c.chunks) chunks\t\(c.embedder)\t\(c.index)") }
        }
    }
}

struct CacheCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cache", abstract: "Manage the query cache.", subcommands: [Clear.self])

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "clear", abstract: "Invalidate cached answers.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .shortAndLong, help: "Only this collection (default: all).") var collection = ""

        func run() async throws {
            let client = try connection.client()
            try await runReporting {
                try await client.clearCache(collection: collection, timeout: connection.deadline)
                print("cache cleared" + (collection.isEmpty ? "" : " for \(collection)"))
            }
        }
    }
}
