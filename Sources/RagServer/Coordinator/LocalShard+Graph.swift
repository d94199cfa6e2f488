import Foundation
import RagCore
import RagEngine
import RagStore

/// Graph builds that neither hold the write lock nor delay a write: index
/// kind `auto` giving a partition its graph once it has outgrown the exact
/// scan, and compaction shedding a graph's tombstones. The graph is built on a
/// thread of its own from a copy of the vectors while the partition answers
/// and takes writes; the writes made meanwhile are replayed into it when it is
/// installed, under the write lock, in one swap.
extension LocalShard {
    /// The kind a partition opens with. `auto` opens exact unless a graph
    /// saved at the last stop can be adopted; a large partition then builds
    /// its graph in the background, so opening does not wait for it.
    static func initialKind(_ policy: VectorIndexPolicy, store: PartitionStore, hasSavedGraph: Bool) throws(RagError) -> VectorIndexKind {
        guard policy.choice == .auto else { return policy.kind(chunks: 0) }
        guard hasSavedGraph else { return .flat }
        return try store.chunkCount() >= policy.autoThreshold ? .hnsw(policy.hnsw) : .flat
    }

    /// Starts a build when one is due. Call it only where no write runs: on the actor, or in init.
    nonisolated func startGraphBuildIfDue() {
        guard !closing.load(ordering: .relaxed), !index.isBuildingGraph else { return }
        let settings: HNSWSettings?
        if vectorPolicy.choice == .auto, case .flat = index.kind, index.chunkCount >= vectorPolicy.autoThreshold {
            settings = vectorPolicy.hnsw
        } else if index.graphNeedsCompaction {
            settings = nil  // the current graph's
        } else {
            return
        }
        guard let input = index.beginGraphBuild(settings: settings) else { return }
        Self.inBackground("ragd-graph-p\(partition)") { [self] in
            let built = PartitionIndex.buildGraph(input) { closing.load(ordering: .relaxed) }
            let handoff = BuiltGraph(graph: built)
            Task { await self.installGraph(handoff, input) }
        }
    }

    /// Runs `body` on a thread of its own below the threads that answer
    /// queries: a graph build may take minutes of a core. (On Linux the nice
    /// value is per thread; `who` 0 is the calling one.)
    static func inBackground(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
            body()
        }
        thread.name = name
        thread.start()
    }

    /// Switches the partition to the graph built from `input`.
    func installGraph(_ built: BuiltGraph, _ input: PartitionIndex.GraphBuildInput) {
        guard let graph = built.graph, !closing.load(ordering: .relaxed) else {
            index.abandonGraphBuild()
            return
        }
        let replaced = index.vectorFile
        changingIndex { index.finishGraphBuild(graph, input: input) }
        imageFiles.withLock { files in
            // A new graph: the image on disk no longer holds this index, even with no write since.
            files.generation = nil
            if let replaced, replaced != index.vectorFile { files.retired.insert(replaced) }
        }
        // Tombstones left by the writes replayed can call for the next build.
        startGraphBuildIfDue()
    }
}

/// A graph passed from the thread that built it to the partition's actor; the
/// builder never touches it again.
struct BuiltGraph: @unchecked Sendable {
    let graph: HNSWGraph?
}
