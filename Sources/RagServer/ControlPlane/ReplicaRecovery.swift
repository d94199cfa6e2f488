import Foundation
import Logging
import RagCore
import RagWire

/// Brings replicas that are out of sync back, run by the mover (one
/// coordinator at a time). For a replica of a partition that is not in the
/// in-sync set and answers:
///
/// 1. every collection catches up from the primary's log, or, when the log no
///    longer reaches back to what it applied (or it applied entries the
///    primary never had: an old primary's unacknowledged writes), is copied
///    again: the copy is taken over the primary's state after entry `base`,
///    and the log after `base` is replayed over it;
/// 2. it joins the in-sync set as `syncing` (one placement version): from then
///    on every write must reach it, and the primary refuses writes routed by
///    an older version;
/// 3. it replays what was ordered before that version, then becomes a reader.
struct ReplicaRecovery {
    let mover: PartitionMover
    var cluster: Cluster { mover.cluster }
    var logger: Logger { mover.logger }

    /// Recovers one replica, if one is out of sync and answers; returns whether it did anything.
    func step(_ placement: Placement) async throws(RagError) -> Bool {
        for (p, slot) in placement.slots.enumerated() {
            guard let primary = slot.primary, !slot.joining.contains(where: { _ in true }) else { continue }
            for id in slot.replicas where !slot.readers.contains(id) {
                guard let address = placement.members[id]?.address,
                      (try? await mover.call(address, .shardFence, Ragd_V1_ShardFenceRequest.with { $0.version = UInt64(placement.version) },
                                             as: Ragd_V1_ShardFenceResponse.self)) != nil else { continue }
                try await recover(id, partition: p, primary: primary, placement: placement)
                return true
            }
        }
        return false
    }

    func recover(_ id: String, partition p: Int, primary: String, placement: Placement) async throws(RagError) {
        let started = ContinuousClock.now
        let target = try mover.address(id, placement)
        let source = try mover.address(primary, placement)
        var placement = placement
        if !placement.slots[p].writers.contains(id) {
            let copied = try await catchUp(p, target: target, source: source, version: placement.version, copyIfNeeded: true)
            try await cluster.changeSlot(p, from: placement.slots[p]) { slot in
                slot.inSync = slot.writers + [id]
                slot.syncing = (slot.syncing ?? []) + [id]
            }
            placement = cluster.placement
            logger.info("partition \(p): \(id) caught up\(copied ? " (copied again)" : "") and is in sync for writes (placement \(placement.version))")
        }
        // Under the new version: the primary's fence rises with the first
        // request, so everything it ordered before is in the log read now.
        do {
            _ = try await catchUp(p, target: target, source: source, version: placement.version, copyIfNeeded: false)
        } catch where error.message.hasPrefix(Replication.needsCopyMarker) {
            // Back to step 1 (a copy), out of the in-sync set meanwhile.
            try await cluster.changeSlot(p, from: placement.slots[p]) { slot in slot.dropInSync([id]) }
            throw error
        }
        try await cluster.changeSlot(p, from: placement.slots[p]) { slot in slot.syncing = (slot.syncing ?? []).filter { $0 != id } }
        logger.info("partition \(p): \(id) is in sync again after \(String(format: "%.1f", started.elapsedSeconds)) s (placement \(cluster.placement.version))")
    }

    /// Every collection of partition `p` on `target` brought to the primary's
    /// head; returns whether a copy was made.
    func catchUp(_ p: Int, target: String, source: String, version: Int64, copyIfNeeded: Bool) async throws(RagError) -> Bool {
        do {
            try await mover.catchUp(partition: p, target: target, source: source, placement: placementAt(version))
            return false
        } catch where error.message.hasPrefix(Replication.needsCopyMarker) && copyIfNeeded {
            logger.warning("partition \(p) on \(target): \(error.message); copying it again from \(source)")
            try await copy(p, target: target, source: source, version: version)
            try await mover.catchUp(partition: p, target: target, source: source, placement: placementAt(version))
            return true
        }
    }

    func placementAt(_ version: Int64) -> Placement {
        var p = cluster.placement
        p.version = version
        return p
    }

    /// Copies every collection of partition `p` from the primary: bases first,
    /// then the documents (the log replay afterwards orders what changed meanwhile).
    func copy(_ p: Int, target: String, source: String, version: Int64) async throws(RagError) {
        let session = UUID().uuidString
        let (entries, bases) = try await mover.bases(p, source: source, version: version)
        _ = try await mover.call(target, .shardReceive, Ragd_V1_ShardReceiveRequest.with {
            $0.partition = UInt32(p); $0.session = session; $0.begin = true; $0.clear = true; $0.bases = bases
        }, as: Ragd_V1_ShardReceiveResponse.self)
        do {
            try await copyDocuments(entries, p: p, session: session, target: target, source: source, version: version)
        } catch {
            // Not left open: a later catch-up must see the copy as unfinished, not replay over it.
            _ = try? await mover.call(target, .shardReceive, Ragd_V1_ShardReceiveRequest.with { $0.partition = UInt32(p); $0.session = session; $0.end = true },
                                      as: Ragd_V1_ShardReceiveResponse.self)
            throw error
        }
        _ = try await mover.call(target, .shardReceive, Ragd_V1_ShardReceiveRequest.with { $0.partition = UInt32(p); $0.session = session; $0.end = true },
                                 as: Ragd_V1_ShardReceiveResponse.self)
    }

    func copyDocuments(_ entries: [Ragd_V1_ShardSlotEntry], p: Int, session: String, target: String, source: String, version: Int64) async throws(RagError) {
        for entry in entries {
            var key = entry.shard
            key.placementVersion = UInt64(version)
            let ids = try await mover.call(source, .shardHashes, Ragd_V1_ShardHashesRequest.with { $0.shard = key }, as: Ragd_V1_ShardHashesResponse.self)
                .hashes.keys.sorted()
            for start in stride(from: 0, to: ids.count, by: PartitionMover.batchDocuments) {
                let page = Array(ids[start..<min(start + PartitionMover.batchDocuments, ids.count)])
                var batch: [Ragd_V1_StoredDocument] = []
                var bytes = 0
                for d in try await mover.fetch(page, key: key, from: source) {
                    if !batch.isEmpty, bytes + d.encodedSizeBound > PartitionMover.maxBatchBytes {
                        _ = try await mover.apply(batch, deletes: [], key: key, session: session, target: target, partition: p)
                        batch = []
                        bytes = 0
                    }
                    batch.append(d)
                    bytes += d.encodedSizeBound
                }
                _ = try await mover.apply(batch, deletes: [], key: key, session: session, target: target, partition: p)
            }
        }
    }
}
