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
        return top.sorted().map(hit)
    }

    /// Rebuilds the graph without its tombstones once they outnumber the live
    /// nodes (and are more than a thousand): a search walks through every
    /// tombstone it meets, so they cost time, and each holds a vector.
    func compactGraphIfWorthIt() {
        guard let graph, graph.deletedCount > max(1_000, graph.liveCount) else { return }
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

    /// Graph nodes, and how many of them are tombstones (nil: no graph).
    public var graphNodes: (nodes: Int, deleted: Int)? { graph.map { ($0.count, $0.deletedCount) } }
}
