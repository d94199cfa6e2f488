import Foundation
import RagCore
import RagEngine
import RagStore

/// Index kind `auto`: a partition searches exactly while it is small and gets
/// an HNSW graph once it holds `autoThreshold` chunks. The graph is built on a
/// thread of its own from a copy of the vectors, while the partition keeps
/// answering exactly and taking writes; the writes made meanwhile are replayed
/// into the graph when it is installed under the write lock.
extension LocalShard {
    /// The kind a partition opens with. `auto` opens exact (a large partition
    /// then builds its graph in the background, so start-up does not wait for
    /// it), unless a graph saved at the last stop can be adopted.
    static func initialKind(_ policy: VectorIndexPolicy, store: PartitionStore, graphPath: String) throws(RagError) -> VectorIndexKind {
        guard policy.choice == .auto else { return policy.kind(chunks: 0) }
        guard FileManager.default.fileExists(atPath: graphPath) else { return .flat }
        return try store.chunkCount() >= policy.autoThreshold ? .hnsw(policy.hnsw) : .flat
    }

    /// Starts building the graph when an `auto` partition has outgrown the
    /// exact scan. Call it only where no write runs: on the actor, or in init.
    nonisolated func startGraphBuildIfDue() {
        guard vectorPolicy.choice == .auto, case .flat = index.kind, index.chunkCount >= vectorPolicy.autoThreshold,
              !closing.load(ordering: .relaxed), let input = index.beginGraphBuild() else { return }
        let settings = vectorPolicy.hnsw
        let thread = Thread { [self] in
            let built = PartitionIndex.buildGraph(input, settings: settings) { closing.load(ordering: .relaxed) }
            let handoff = BuiltGraph(graph: built)
            Task { await self.installGraph(handoff, input) }
        }
        thread.name = "ragd-graph-p\(partition)"
        thread.start()
    }

    /// Switches the partition to the graph built from `input`.
    func installGraph(_ built: BuiltGraph, _ input: PartitionIndex.GraphBuildInput) {
        guard let graph = built.graph, !closing.load(ordering: .relaxed) else {
            index.abandonGraphBuild()
            return
        }
        lock.write { index.finishGraphBuild(graph, input: input, settings: vectorPolicy.hnsw) }
    }
}

/// A graph passed from the thread that built it to the partition's actor; the
/// builder never touches it again.
struct BuiltGraph: @unchecked Sendable {
    let graph: HNSWGraph?
}
