/// One move the rebalancer wants: logical partition `partition` gets a replica
/// on `to`, and `from` (if any) stops being one.
public struct PlannedMove: Sendable, Hashable {
    public var partition: Int
    public var from: String?
    public var to: String
}

/// Decides which partitions move where. Pure: a placement (and the chunk count
/// of each logical partition) in, moves out; the mover makes them one at a time
/// and asks again after each.
///
/// In order: partitions short of replicas get them (on the least loaded active
/// nodes), draining nodes are emptied, then partitions move from the most to
/// the least loaded active node until every active node holds within one
/// partition of every other. Among a node's partitions, the one moved is the
/// one whose chunks best even out the two nodes' chunk totals.
public enum RebalancePlanner {
    public static func plan(_ p: Placement, chunks: [Int: Int] = [:], limit: Int = 1000) -> [PlannedMove] {
        var p = p
        var moves: [PlannedMove] = []
        let active = p.members.filter { $0.value.state == "active" }.keys.sorted()
        guard !active.isEmpty else { return [] }
        var load = p.load
        var chunkLoad = [String: Int]()
        for (i, s) in p.slots.enumerated() { for id in s.replicas { chunkLoad[id, default: 0] += chunks[i] ?? 0 } }

        func holders(_ i: Int) -> Set<String> { Set(p.slots[i].writeSet) }
        func leastLoaded(excluding: Set<String>) -> String? {
            active.filter { !excluding.contains($0) }.min { (load[$0] ?? 0, chunkLoad[$0] ?? 0, $0) < (load[$1] ?? 0, chunkLoad[$1] ?? 0, $1) }
        }
        func apply(_ m: PlannedMove) {
            moves.append(m)
            var s = p.slots[m.partition]
            if let from = m.from {
                s.replicas.removeAll { $0 == from }
                load[from, default: 0] -= 1
                chunkLoad[from, default: 0] -= chunks[m.partition] ?? 0
            }
            s.replicas.append(m.to)
            load[m.to, default: 0] += 1
            chunkLoad[m.to, default: 0] += chunks[m.partition] ?? 0
            p.slots[m.partition] = s
        }

        // 1. Partitions short of replicas.
        for i in p.slots.indices {
            while p.slots[i].replicas.count + p.slots[i].joining.count < min(p.replication, active.count), moves.count < limit,
                  let to = leastLoaded(excluding: holders(i)) {
                apply(PlannedMove(partition: i, from: nil, to: to))
            }
        }
        // 2. Draining nodes.
        for id in p.members.keys.sorted() where p.members[id]?.state == "draining" {
            for i in p.slots.indices where p.slots[i].replicas.contains(id) && moves.count < limit {
                guard let to = leastLoaded(excluding: holders(i)) else { continue }
                apply(PlannedMove(partition: i, from: id, to: to))
            }
        }
        // 3. Even out the active nodes.
        while moves.count < limit {
            guard let most = active.max(by: { (load[$0] ?? 0, $1) < (load[$1] ?? 0, $0) }),
                  let least = active.min(by: { (load[$0] ?? 0, $0) < (load[$1] ?? 0, $1) }),
                  (load[most] ?? 0) - (load[least] ?? 0) > 1 else { break }
            let gap = (chunkLoad[most] ?? 0) - (chunkLoad[least] ?? 0)
            let candidates = p.slots.indices.filter { p.slots[$0].replicas.contains(most) && !holders($0).contains(least) }
            guard let pick = candidates.min(by: { (abs(gap - 2 * (chunks[$0] ?? 0)), $0) < (abs(gap - 2 * (chunks[$1] ?? 0)), $1) }) else { break }
            apply(PlannedMove(partition: pick, from: most, to: least))
        }
        return moves
    }
}
