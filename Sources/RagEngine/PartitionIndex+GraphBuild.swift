/// A graph built while the partition serves: from a copy of the live vectors,
/// on any thread, while the partition keeps answering (with its exact scan or
/// its current graph) and taking writes. The slots written meanwhile are
/// recorded and replayed into the new graph when it is installed. This turns
/// an exact partition into an HNSW one (index kind `auto`) and rebuilds a
/// graph without its tombstones (compaction).
extension PartitionIndex {
    /// What a graph is built from: the live chunks' vectors, in slot order.
    public struct GraphBuildInput: Sendable {
        /// Node `i` of the new graph is chunk slot `slots[i]`.
        public let slots: [Int32]
        /// Row-major, `slots.count × dimension`.
        public let vectors: [Float]
        public let dimension: Int
        public let settings: HNSWSettings
        public let backing: VectorBacking
    }

    /// True between `beginGraphBuild` and `finishGraphBuild` or `abandonGraphBuild`.
    public var isBuildingGraph: Bool { changedSlots != nil }

    /// True once a graph's tombstones outnumber its live nodes (and pass a
    /// thousand): a search walks through every tombstone it meets, and each holds a vector.
    public var graphNeedsCompaction: Bool {
        guard let graph else { return false }
        return graph.deletedCount > max(1_000, graph.liveCount)
    }

    /// Copies the live vectors (from the float block or the current graph) and
    /// starts recording the slots writes touch. `settings`: the new graph's (nil:
    /// the current graph's). Nil when a build is under way.
    public func beginGraphBuild(settings: HNSWSettings? = nil) -> GraphBuildInput? {
        guard changedSlots == nil else { return nil }
        var slots: [Int32] = []
        slots.reserveCapacity(chunkCount)
        var copy: [Float] = []
        copy.reserveCapacity(chunkCount * dimension)
        for s in slotDocument.indices where slotDocument[s] >= 0 {
            slots.append(Int32(s))
            copy.append(contentsOf: slotVector(s))
        }
        changedSlots = []
        let settings = settings ?? hnsw
        return GraphBuildInput(slots: slots, vectors: copy, dimension: dimension, settings: settings, backing: backing(for: settings))
    }

    /// Builds the graph for `input`. Touches no partition state: run it on any
    /// thread. Nil when `cancelled` turned true on the way.
    public static func buildGraph(_ input: GraphBuildInput, cancelled: () -> Bool = { false }) -> HNSWGraph? {
        let graph = HNSWGraph(dimension: input.dimension, parameters: input.settings.parameters, backing: input.backing)
        let d = input.dimension
        for i in input.slots.indices {
            if i % 1024 == 0, cancelled() { return nil }
            _ = graph.add(Array(input.vectors[i * d..<(i + 1) * d]))
        }
        return graph
    }

    /// Installs a graph built from `input` (under the owner's write lock):
    /// each slot written since the input was taken loses its node (a
    /// tombstone) and, if it holds a chunk now, gets one with its current
    /// vector. Then searches use the new graph, and the float block and any
    /// old graph go: the graph holds the only copy of the vectors.
    public func finishGraphBuild(_ built: HNSWGraph, input: GraphBuildInput) {
        guard let changed = changedSlots else { return }
        // Current vectors come from the old graph or block: read them before the swap.
        let replay = changed.sorted().map { slot in (slot, slotDocument[Int(slot)] >= 0 ? slotVector(Int(slot)) : nil) }
        var nodeSlot = input.slots
        var slotNode = [Int32](repeating: -1, count: slotDocument.count)
        for (node, slot) in input.slots.enumerated() { slotNode[Int(slot)] = Int32(node) }
        for (slot, vector) in replay {
            let s = Int(slot)
            if slotNode[s] >= 0 {
                built.remove(slotNode[s])
                slotNode[s] = -1
            }
            if let vector {
                slotNode[s] = built.add(vector)
                nodeSlot.append(slot)
            }
        }
        graph = built
        self.slotNode = slotNode
        self.nodeSlot = nodeSlot
        hnsw = input.settings
        changedSlots = nil
        vectors = []
        // The input held every chunk, linked or waiting, and the replay the rest.
        pendingVectors = [:]
    }

    /// Stops recording writes for a build that will not be installed.
    public func abandonGraphBuild() {
        changedSlots = nil
    }
}
