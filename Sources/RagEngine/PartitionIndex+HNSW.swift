import Foundation

/// Vector search through the partition's HNSW graph (`--vector-index hnsw`).
extension PartitionIndex {
    /// The graph's best `k` chunks, scored exactly. With a filter, the walk
    /// keeps only admitted chunks and goes on until it holds k of them; when
    /// few chunks are admitted, they are scanned exactly instead.
    func graphSearch(_ query: [Float], k: Int, graph: HNSWGraph, allowed: [Bool]?) -> [Hit] {
        var filter: ((Int32) -> Bool)?
        var admittedChunks: Int?
        if let allowed {
            let slotDocument = self.slotDocument, nodeSlot = self.nodeSlot
            filter = { node in
                let d = slotDocument[Int(nodeSlot[Int(node)])]
                return d >= 0 && allowed[Int(d)]
            }
            var n = 0
            for (d, entry) in documents.enumerated() where allowed[d] { n += entry?.slots.count ?? 0 }
            admittedChunks = n
        }
        var top = TopK<ChunkKey>(k: k)
        for s in graph.search(query, k: k, ef: max(hnsw.ef, k), filter: filter, admitted: admittedChunks) {
            top.insert(score: Double(s.score), key: key(nodeSlot[Int(s.id)]))
        }
        // Chunks not linked yet, scored exactly.
        for (slot, v) in pendingVectors {
            let d = slotDocument[Int(slot)]
            guard d >= 0, allowed.map({ $0[Int(d)] }) ?? true else { continue }
            top.insert(score: Double(VectorMath.dot(v, query)), key: key(slot))
        }
        return top.sorted().map(hit)
    }

    /// Chunks waiting to be linked into the graph (`defersGraphInserts`).
    public var pendingGraphInserts: Int { pendingVectors.count }

    /// Links up to `limit` waiting chunks into the graph (lowest slots first, so
    /// the order, and so the graph, is the same on every replica); returns how many wait still.
    @discardableResult
    public func insertPending(limit: Int) -> Int {
        guard let graph, !pendingVectors.isEmpty else { return 0 }
        for slot in pendingVectors.keys.sorted().prefix(limit) {
            slotNode[Int(slot)] = graph.add(pendingVectors.removeValue(forKey: slot)!)
            nodeSlot.append(slot)
        }
        return pendingVectors.count
    }

    /// Rebuilds the graph without its tombstones, in place, when `graphNeedsCompaction`.
    func compactGraphIfWorthIt() {
        guard graphNeedsCompaction, let graph else { return }
        let (compacted, map) = graph.compacted()
        var slots = [Int32](repeating: -1, count: compacted.count)
        for (old, new) in map.enumerated() {
            guard let new else { continue }
            let slot = nodeSlot[old]
            slots[Int(new)] = slot
            slotNode[Int(slot)] = new
        }
        self.graph = compacted
        nodeSlot = slots
    }

    // MARK: saved graphs

    /// The graph and each node's label, as the bytes of a graph file (nil: no graph).
    public func graphData() -> Data? {
        guard let graph else { return nil }
        let labels = nodeSlot.enumerated().map { node, slot -> NodeLabel? in
            guard slot >= 0, !graph.isDeleted(Int32(node)), let d = documents[Int(slotDocument[Int(slot)])] else { return nil }
            return NodeLabel(documentID: d.id, ordinal: slotOrdinal[Int(slot)], contentHash: d.contentHash)
        }
        return graph.encoded(labels: labels)
    }

    /// Adopts a saved graph, before the partition's documents are loaded: each
    /// loaded chunk whose document version, ordinal and vector match a node's
    /// takes that node instead of being inserted. False (and nothing adopted)
    /// when the bytes are not a graph of this partition's parameters.
    public func adoptGraph(_ data: Data) -> Bool {
        guard let graph, chunkCount == 0, let (saved, labels) = HNSWGraph.decode(data, dimension: dimension, parameters: graph.parameters, backing: graph.backing) else { return false }
        self.graph = saved
        nodeSlot = [Int32](repeating: -1, count: saved.count)
        unclaimedNodes = [:]
        for (node, label) in labels.enumerated() { if let label { unclaimedNodes[label] = Int32(node) } }
        adoptedNodes = saved.count
        return true
    }

    /// Ends an adoption: the saved nodes no loaded chunk claimed (documents
    /// changed or deleted after the graph was saved) become tombstones.
    /// Returns how many nodes were reused and how many tombstoned.
    @discardableResult
    public func finishGraphAdoption() -> (reused: Int, tombstoned: Int) {
        guard let graph else { return (0, 0) }
        let left = unclaimedNodes.values
        for node in left { graph.remove(node) }
        unclaimedNodes = [:]
        let reused = adoptedNodes - graph.deletedCount
        adoptedNodes = 0
        compactGraphIfWorthIt()
        return (reused, left.count)
    }

    /// The saved node for this chunk, if its vector is the one saved.
    func claimNode(_ label: NodeLabel, _ vector: [Float]) -> Int32? {
        guard !unclaimedNodes.isEmpty, let graph, let node = unclaimedNodes[label], graph.vector(node, equals: vector) else { return nil }
        unclaimedNodes[label] = nil
        return node
    }

    /// The kept file holding the graph's float vectors (nil: none; see `VectorBacking.keptFile`).
    public var vectorFile: String? { graph?.vectors.path }

    /// Graph nodes, and how many of them are tombstones (nil: no graph).
    public var graphNodes: (nodes: Int, deleted: Int)? { graph.map { ($0.count, $0.deletedCount) } }
}
