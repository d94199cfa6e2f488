/// An exact partition becoming an HNSW one while it serves (index kind
/// `auto`, once the partition outgrows the exact scan). The graph is built
/// from a copy of the vectors without holding the partition; writes made
/// meanwhile are recorded and replayed into the graph when it is installed.
extension PartitionIndex {
    /// What a graph is built from: the live chunks' vectors, in slot order.
    public struct GraphBuildInput: Sendable {
        /// Node `i` of the graph is chunk slot `slots[i]`.
        public let slots: [Int32]
        /// Row-major, `slots.count × dimension`.
        public let vectors: [Float]
        public let dimension: Int
    }

    /// True while `beginGraphBuild` has been called and neither finish nor abandon has.
    public var isBuildingGraph: Bool { changedSlots != nil }

    /// Copies the live vectors and starts recording the slots writes touch.
    /// Nil when the partition already has a graph or a build is under way.
    public func beginGraphBuild() -> GraphBuildInput? {
        guard graph == nil, changedSlots == nil else { return nil }
        var slots: [Int32] = []
        slots.reserveCapacity(chunkCount)
        var copy: [Float] = []
        copy.reserveCapacity(chunkCount * dimension)
        for s in slotDocument.indices where slotDocument[s] >= 0 {
            slots.append(Int32(s))
            copy.append(contentsOf: vectors[s * dimension..<(s + 1) * dimension])
        }
        changedSlots = []
        return GraphBuildInput(slots: slots, vectors: copy, dimension: dimension)
    }

    /// Builds the graph for `input` (node `i` is `input.slots[i]`). Touches no
    /// partition state: run it on any thread while the partition serves.
    public static func buildGraph(_ input: GraphBuildInput, settings: HNSWSettings, cancelled: () -> Bool = { false }) -> HNSWGraph? {
        let graph = HNSWGraph(dimension: input.dimension, parameters: .init(m: settings.m, efConstruction: settings.efConstruction))
        let d = input.dimension
        for i in input.slots.indices {
            if i % 1024 == 0, cancelled() { return nil }
            _ = graph.add(Array(input.vectors[i * d..<(i + 1) * d]))
        }
        return graph
    }

    /// Installs a graph built from `input`: chunks written since the input was
    /// taken replace their nodes (the old node becomes a tombstone, the current
    /// vector is added), then the partition searches the graph and drops its
    /// float block (the graph holds the only copy of the vectors).
    public func finishGraphBuild(_ built: HNSWGraph, input: GraphBuildInput, settings: HNSWSettings) {
        guard graph == nil, let changed = changedSlots else { return }
        var nodeSlot = input.slots
        var slotNode = [Int32](repeating: -1, count: slotDocument.count)
        for (node, slot) in input.slots.enumerated() { slotNode[Int(slot)] = Int32(node) }
        for slot in changed.sorted() {
            let s = Int(slot)
            if slotNode[s] >= 0 {
                built.remove(slotNode[s])
                slotNode[s] = -1
            }
            if slotDocument[s] >= 0 {
                slotNode[s] = built.add(Array(vectors[s * dimension..<(s + 1) * dimension]))
                nodeSlot.append(slot)
            }
        }
        graph = built
        self.slotNode = slotNode
        self.nodeSlot = nodeSlot
        hnsw = settings
        kind = .hnsw(settings)
        changedSlots = nil
        vectors = []
        compactGraphIfWorthIt()
    }

    /// Stops recording writes for a build that will not be installed.
    public func abandonGraphBuild() {
        changedSlots = nil
    }
}
