import Foundation
import Logging
import RagCore
import RagWire
import SwiftProtobuf

/// Makes one partition move, step by step, each step recorded in etcd so that
/// any coordinator can finish a move another began:
///
/// 1. **copying**: the placement gets the new node as `joining` (it receives
///    every write from then on), every node of the partition is fenced at that
///    version (no coordinator still routes by the older one), then the copy is
///    made: every collection's documents, in id order, throttled, with a cursor
///    in etcd. The target skips copies of documents written during the copy
///    (newer). Then content hashes are compared document by document, and any
///    difference not explained by such a write is repaired from the source.
/// 2. **switched**: one transaction makes the new node a replica and the old
///    one `leaving` (written, no longer read); fenced again.
/// 3. **dropping**: the old node leaves the placement; it is fenced at that
///    version and its copy is deleted.
///
/// A write that does not reach the joining node marks the move **failed**;
/// the mover then takes the node out again, deletes its partial copy, and the
/// rebalancer tries later.
public final class PartitionMover: Sendable {
    let store: PlacementStore
    let cluster: Cluster
    let me: String
    let logger: Logger
    let metrics: RagMetrics?
    /// Documents per copy batch: ~1 MB of 384-d chunks, far below the 16 MiB frame limit.
    static let batchDocuments = 256
    /// Bytes per copy call to the target (large documents go a few at a time).
    static let maxBatchBytes = 4 * 1024 * 1024

    public init(store: PlacementStore, cluster: Cluster, me: String, logger: Logger, metrics: RagMetrics?) {
        self.store = store
        self.cluster = cluster
        self.me = me
        self.logger = logger
        self.metrics = metrics
    }

    /// Begins `move`: the target's receive session first (with where each
    /// collection's log replay will start), then the record and the joining
    /// node in one transaction.
    func start(_ move: PlannedMove, placement: Placement, revision: Int64) async throws(RagError) -> Bool {
        var record = MoveRecord(partition: move.partition, from: move.from, to: move.to, phase: "copying",
                                session: UUID().uuidString, startedAt: Date().timeIntervalSince1970)
        let slot = placement.slots[move.partition]
        if let primary = slot.primary {
            let (_, bases) = try await bases(move.partition, source: try address(primary, placement), version: placement.version)
            record.bases = Dictionary(uniqueKeysWithValues: bases.map { ($0.shard.collection, [$0.seq, $0.version]) })
        }
        try await begin(record, clear: true, placement: placement)
        let next = placement.next { $0.slots[move.partition].joining.append(move.to) }
        let ok = try await store.publish(next, over: revision, mover: me, move: (record, 0, false))
        if ok {
            cluster.adopt(next)
            logger.info("moving partition \(move.partition) from \(move.from ?? "(none)") to \(move.to) (placement \(next.version))")
        }
        return ok
    }

    /// Takes a move one phase further (or to its end).
    func drive(_ record: MoveRecord, revision: Int64) async throws(RagError) {
        guard let (placement, prev) = try await store.load() else { throw RagError(.unavailable, "no placement in etcd") }
        cluster.adopt(placement)
        switch record.phase {
        case "copying": try await copy(record, revision: revision, placement: placement, prev: prev)
        case "switched": try await leave(record, revision: revision, placement: placement, prev: prev)
        case "dropping": try await finish(record, revision: revision, placement: placement)
        default: try await undo(record, revision: revision, placement: placement, prev: prev)
        }
    }

    // MARK: phases

    func copy(_ record: MoveRecord, revision: Int64, placement: Placement, prev: Int64) async throws(RagError) {
        var record = record
        var revision = revision
        let p = record.partition
        let slot = placement.slots[p]
        guard slot.joining.contains(record.to) else { return try await undo(record, revision: revision, placement: placement, prev: prev) }
        try await fence(slot.writeSet, placement: placement)
        let target = try address(record.to, placement)
        let clear = record.doneCollections.isEmpty && record.cursor.isEmpty && record.copiedDocuments == 0
        try await begin(record, clear: clear, placement: placement)
        let source = try await sourceNode(record, slot: slot, placement: placement)
        let entries = try await call(source, .shardSlot, Ragd_V1_ShardSlotRequest.with { $0.partition = UInt32(p) }, as: Ragd_V1_ShardSlotResponse.self).entries
        record.totalDocuments = entries.reduce(0) { $0 + Int($1.documents) }
        let rate = (try? await store.settings().maxBytesPerSecond) ?? ClusterSettings().maxBytesPerSecond
        let started = ContinuousClock.now
        var sent = 0
        var lastSaved = ContinuousClock.now
        func save() async throws(RagError) {
            guard let r = try await store.update(record, over: revision, mover: me) else {
                throw RagError(.aborted, "the move of partition \(p) changed in etcd (failed, or another mover)")
            }
            revision = r
            lastSaved = .now
        }
        for entry in entries.sorted(by: { $0.shard.collection < $1.shard.collection }) where !record.doneCollections.contains(entry.shard.collection) {
            var key = entry.shard
            key.placementVersion = UInt64(placement.version)
            let ids = try await call(source, .shardHashes, Ragd_V1_ShardHashesRequest.with { $0.shard = key }, as: Ragd_V1_ShardHashesResponse.self)
                .hashes.keys.sorted().filter { $0 > record.cursor }
            // Pipelined: the next page is fetched from the source while the target applies this one.
            let pages = stride(from: 0, to: ids.count, by: Self.batchDocuments).map { Array(ids[$0..<min($0 + Self.batchDocuments, ids.count)]) }
            let fetch: @Sendable ([String]) async throws -> [Ragd_V1_StoredDocument] = { [self, key] page in
                try await self.fetch(page, key: key, from: source)
            }
            var next: Task<[Ragd_V1_StoredDocument], any Error>? = pages.first.map { page in Task { try await fetch(page) } }
            for (n, page) in pages.enumerated() {
                let docs: [Ragd_V1_StoredDocument]
                do { docs = try await next!.value } catch { throw RagError(from: error) }
                next = n + 1 < pages.count ? Task { [page = pages[n + 1]] in try await fetch(page) } : nil
                var bytes = 0
                var batch: [Ragd_V1_StoredDocument] = []
                var batchBytes = 0
                for d in docs {
                    let size = d.encodedSizeBound
                    if !batch.isEmpty, batchBytes + size > Self.maxBatchBytes {
                        bytes += try await apply(batch, deletes: [], key: key, session: record.session, target: target, partition: p)
                        batch = []
                        batchBytes = 0
                    }
                    batch.append(d)
                    batchBytes += size
                }
                bytes += try await apply(batch, deletes: [], key: key, session: record.session, target: target, partition: p)
                sent += bytes
                record.cursor = page.last!
                record.copiedDocuments += page.count
                record.copiedBytes += bytes
                record.bytesPerSecond = Double(sent) / max(started.elapsedSeconds, 1e-3)
                // Throttle: never ahead of the rate since this run began (the
                // cursor is saved first, so a wait is never lost progress).
                let due = rate > 0 ? Double(sent) / rate - started.elapsedSeconds : 0
                if lastSaved.elapsedSeconds > 1 || due > 0.5 { try await save() }
                if due > 0 { try? await Task.sleep(for: .milliseconds(Int(due * 1000))) }
            }
            record.doneCollections.append(entry.shard.collection)
            record.cursor = ""
            try await save()
        }
        try await verify(entries, source: source, target: target, record: record, placement: placement)
        // The copy is made: the target leaves copy mode and replays the
        // primary's log from each collection's base, in order; writers keep
        // sending it every new entry meanwhile (filling any gap from the log).
        _ = try await call(target, .shardReceive, Ragd_V1_ShardReceiveRequest.with { $0.partition = UInt32(p); $0.session = record.session; $0.end = true },
                           as: Ragd_V1_ShardReceiveResponse.self)
        do {
            try await catchUp(partition: p, target: target, source: source, placement: placement)
        } catch where error.message.hasPrefix(Replication.needsCopyMarker) {
            _ = try await store.markFailed(partition: p, node: record.to, reason: error.message)
            throw error
        }
        // Switch: the copy is current, and writes keep reaching it.
        record.phase = "switched"
        let from = record.from
        let next = placement.next { pl in
            var s = pl.slots[p]
            s.joining.removeAll { $0 == record.to }
            if let from {
                s.replicas.removeAll { $0 == from }
                s.leaving.append(from)
                s.inSync?.removeAll { $0 == from }
                s.syncing?.removeAll { $0 == from }
            }
            s.replicas.append(record.to)
            if s.inSync != nil { s.inSync!.append(record.to) }
            pl.slots[p] = s
        }
        guard try await store.publish(next, over: prev, mover: me, move: (record, revision, false)) else {
            throw RagError(.aborted, "placement or move changed during the switch of partition \(p); trying again")
        }
        cluster.adopt(next)
        logger.info("partition \(p): \(record.to) is a replica now (placement \(next.version)); copied \(record.copiedDocuments) documents, \(record.copiedBytes) bytes")
        guard let rev = try await etcdRevision(record) else { return }
        try await leave(record, revision: rev, placement: next, prev: try await store.load()?.revision ?? 0)
    }

    func leave(_ record: MoveRecord, revision: Int64, placement: Placement, prev: Int64) async throws(RagError) {
        let p = record.partition
        try await fence(placement.slots[p].writeSet, placement: placement)
        if let target = try? address(record.to, placement) {
            _ = try? await call(target, .shardReceive, Ragd_V1_ShardReceiveRequest.with { $0.partition = UInt32(p); $0.session = record.session; $0.end = true },
                                as: Ragd_V1_ShardReceiveResponse.self)
        }
        var record = record
        record.phase = "dropping"
        let next = placement.next { $0.slots[p].leaving.removeAll { $0 == record.from } }
        guard try await store.publish(next, over: prev, mover: me, move: (record, revision, false)) else {
            throw RagError(.aborted, "placement changed while partition \(p) was leaving \(record.from ?? "")")
        }
        cluster.adopt(next)
        guard let rev = try await etcdRevision(record) else { return }
        try await finish(record, revision: rev, placement: next)
    }

    func finish(_ record: MoveRecord, revision: Int64, placement: Placement) async throws(RagError) {
        let p = record.partition
        try await fence(placement.slots[p].writeSet, placement: placement)
        if let from = record.from, let address = placement.members[from]?.address ?? Optional(from) {
            do {
                _ = try await call(address, .shardDrop, Ragd_V1_ShardDropRequest.with { $0.partition = UInt32(p); $0.version = UInt64(placement.version) },
                                   as: Ragd_V1_ShardDropResponse.self)
            } catch {
                // It no longer holds the partition in the placement; its stale copy is only disk space.
                logger.warning("partition \(p): could not delete the old copy on \(from): \(error)")
            }
        }
        _ = try await store.etcd.transaction([.modRevision(record.key, revision)], [.delete(record.key)])
        metrics?.partitionMove(result: "ok")
        logger.info("partition \(p) moved to \(record.to)")
    }

    func undo(_ record: MoveRecord, revision: Int64, placement: Placement, prev: Int64) async throws(RagError) {
        let p = record.partition
        let next = placement.next { $0.slots[p].joining.removeAll { $0 == record.to } }
        guard try await store.publish(next, over: prev, mover: me, move: (record, revision, true)) else {
            throw RagError(.aborted, "placement changed while undoing the move of partition \(p)")
        }
        cluster.adopt(next)
        logger.warning("move of partition \(p) to \(record.to) undone: \(record.error.isEmpty ? "inconsistent record" : record.error)")
        metrics?.partitionMove(result: "failed")
        // Best effort: the node holds nothing of p in the placement now.
        try? await fence(next.slots[p].writeSet + [record.to], placement: next)
        if let target = try? address(record.to, next) {
            _ = try? await call(target, .shardDrop, Ragd_V1_ShardDropRequest.with { $0.partition = UInt32(p); $0.version = UInt64(next.version) },
                                as: Ragd_V1_ShardDropResponse.self)
            _ = try? await call(target, .shardReceive, Ragd_V1_ShardReceiveRequest.with { $0.partition = UInt32(p); $0.session = record.session; $0.end = true },
                                as: Ragd_V1_ShardReceiveResponse.self)
        }
    }

    // MARK: parts

    /// Compares every document's content hash on source and target, repairing
    /// from the source what differs and was not written during the copy.
    func verify(_ entries: [Ragd_V1_ShardSlotEntry], source: String, target: String, record: MoveRecord, placement: Placement) async throws(RagError) {
        for entry in entries {
            var key = entry.shard
            key.placementVersion = UInt64(placement.version)
            var clean = false
            for round in 0..<8 where !clean {
                if round > 0 { try? await Task.sleep(for: .milliseconds(100 * round)) }
                let src = try await call(source, .shardHashes, Ragd_V1_ShardHashesRequest.with { $0.shard = key }, as: Ragd_V1_ShardHashesResponse.self).hashes
                let dst = try await call(target, .shardHashes, Ragd_V1_ShardHashesRequest.with { $0.shard = key }, as: Ragd_V1_ShardHashesResponse.self).hashes
                let status = try await call(target, .shardReceive, Ragd_V1_ShardReceiveRequest.with {
                    $0.partition = key.partition; $0.session = record.session; $0.shard = key
                }, as: Ragd_V1_ShardReceiveResponse.self)
                guard status.known else { throw RagError(.aborted, "the receive session on \(target) was lost (it restarted); copying again") }
                let touched = Set(status.touched)
                let differ = Set(src.keys).union(dst.keys).filter { src[$0] != dst[$0] && !touched.contains($0) }.sorted()
                clean = differ.isEmpty
                guard !clean else { break }
                let missing = differ.filter { src[$0] == nil }
                let present = differ.filter { src[$0] != nil }
                var i = 0
                repeat {
                    let page = Array(present[i..<min(i + Self.batchDocuments, present.count)])
                    let docs = page.isEmpty ? [] : try await call(source, .shardFetch, Ragd_V1_ShardFetchRequest.with { $0.shard = key; $0.ids = page },
                                                                   as: Ragd_V1_ShardFetchResponse.self).documents
                    _ = try await apply(docs, deletes: i == 0 ? missing : [], key: key, session: record.session, target: target, partition: record.partition)
                    i += Self.batchDocuments
                } while i < present.count
            }
            guard clean else { throw RagError(.aborted, "partition \(record.partition) of \(key.collection): the copy does not match the source yet; trying again") }
        }
    }

    /// Documents from the source; a page whose answer would exceed the frame
    /// limit is fetched in halves.
    func fetch(_ ids: [String], key: Ragd_V1_ShardKey, from source: String) async throws(RagError) -> [Ragd_V1_StoredDocument] {
        do {
            return try await call(source, .shardFetch, Ragd_V1_ShardFetchRequest.with { $0.shard = key; $0.ids = ids }, as: Ragd_V1_ShardFetchResponse.self).documents
        } catch where error.code == .resourceExhausted && ids.count > 1 {
            let half = ids.count / 2
            return try await fetch(Array(ids[..<half]), key: key, from: source) + fetch(Array(ids[half...]), key: key, from: source)
        }
    }

    /// Sends copies to the target; returns (a bound of) the bytes sent.
    func apply(_ docs: [Ragd_V1_StoredDocument], deletes: [String], key: Ragd_V1_ShardKey, session: String, target: String, partition: Int) async throws(RagError) -> Int {
        guard !docs.isEmpty || !deletes.isEmpty else { return 0 }
        let request = Ragd_V1_ShardReceiveRequest.with {
            $0.partition = UInt32(partition); $0.session = session; $0.shard = key; $0.documents = docs; $0.repair = deletes
        }
        let r = try await call(target, .shardReceive, request, as: Ragd_V1_ShardReceiveResponse.self)
        guard r.known else { throw RagError(.aborted, "the receive session on \(target) was lost (it restarted); copying again") }
        // Counted, not encoded a second time: the throttle and the progress need no more.
        return docs.reduce(0) { $0 + $1.encodedSizeBound }
    }

    /// The node to copy from: the primary, whose log the copy's replay continues.
    func sourceNode(_ record: MoveRecord, slot: Placement.Slot, placement: Placement) async throws(RagError) -> String {
        guard let primary = slot.primary else { throw RagError(.unavailable, "partition \(record.partition): no in-sync replica to copy from") }
        return try address(primary, placement)
    }

    /// Every collection `source` holds of partition `p`, each with the last
    /// entry it applied: where a copy made from it now continues by the log.
    func bases(_ p: Int, source: String, version: Int64) async throws(RagError) -> (entries: [Ragd_V1_ShardSlotEntry], bases: [Ragd_V1_ShardBase]) {
        let entries = try await call(source, .shardSlot, Ragd_V1_ShardSlotRequest.with { $0.partition = UInt32(p) }, as: Ragd_V1_ShardSlotResponse.self).entries
        var bases: [Ragd_V1_ShardBase] = []
        for entry in entries {
            var key = entry.shard
            key.placementVersion = UInt64(version)
            let s = try await call(source, .shardCounts, Ragd_V1_ShardCountsRequest.with { $0.shard = key }, as: Ragd_V1_ShardCountsResponse.self)
            bases.append(Ragd_V1_ShardBase.with { $0.shard = key; $0.seq = s.seq; $0.version = s.seqVersion })
        }
        return (entries, bases)
    }

    /// Opens (or finds open) the target's receive session.
    func begin(_ record: MoveRecord, clear: Bool, placement: Placement) async throws(RagError) {
        _ = try await call(try address(record.to, placement), .shardReceive, Ragd_V1_ShardReceiveRequest.with {
            $0.partition = UInt32(record.partition); $0.session = record.session; $0.begin = true; $0.clear = clear
            $0.bases = (record.bases ?? [:]).sorted { $0.key < $1.key }.map { c, b in
                Ragd_V1_ShardBase.with { $0.shard.collection = c; $0.shard.partition = UInt32(record.partition); $0.seq = b.first ?? 0; $0.version = b.last ?? 0 }
            }
        }, as: Ragd_V1_ShardReceiveResponse.self)
    }

    /// Replays the source's log on the target, every collection, up to the
    /// source's head (the writers send everything after it).
    func catchUp(partition p: Int, target: String, source: String, placement: Placement) async throws(RagError) {
        let src = try cluster.node(address: source).client
        let dst = try cluster.node(address: target).client
        // The source refuses writes routed by older versions from now on, so
        // the collections listed next and their logs' heads cover them all.
        _ = try await call(source, .shardFence, Ragd_V1_ShardFenceRequest.with { $0.version = UInt64(placement.version) }, as: Ragd_V1_ShardFenceResponse.self)
        for entry in try await call(source, .shardSlot, Ragd_V1_ShardSlotRequest.with { $0.partition = UInt32(p) }, as: Ragd_V1_ShardSlotResponse.self).entries {
            var key = entry.shard
            key.placementVersion = UInt64(placement.version)
            let state = try await call(target, .shardCounts, Ragd_V1_ShardCountsRequest.with { $0.shard = key }, as: Ragd_V1_ShardCountsResponse.self)
            // A copy left half made (its maker died): only a new copy completes it.
            guard !state.receiving else { throw Replication.needsCopy("partition \(p) of \(key.collection) on \(target) holds an unfinished copy") }
            guard try await ReplicaSync.isPrefix(target: state, primary: src, key: key, timeout: .seconds(30)) else {
                throw Replication.needsCopy("partition \(p) of \(key.collection) on \(target) does not continue the primary's log")
            }
            try await ReplicaSync.fill(target: dst, primary: src, key: key, after: state.seq, timeout: .seconds(30))
        }
    }

    /// Raises the fence of every node in `ids` to the placement's version.
    func fence(_ ids: [String], placement: Placement) async throws(RagError) {
        for id in Set(ids) {
            _ = try await call(try address(id, placement), .shardFence, Ragd_V1_ShardFenceRequest.with { $0.version = UInt64(placement.version) },
                               as: Ragd_V1_ShardFenceResponse.self)
        }
    }

    func address(_ id: String, _ placement: Placement) throws(RagError) -> String {
        guard let a = placement.members[id]?.address else { throw RagError(.failedPrecondition, "node \(id) is not a member of the placement") }
        return a
    }

    func call<Resp: SwiftProtobuf.Message>(_ address: String, _ method: RagMethod, _ request: some SwiftProtobuf.Message, as: Resp.Type) async throws(RagError) -> Resp {
        let node = try cluster.node(address: address)
        let t = ContinuousClock.now
        do {
            let r = try await node.client.call(method, request, as: Resp.self, timeout: .seconds(30))
            node.succeeded(latency: t.elapsedSeconds)
            return r
        } catch {
            throw RagError(from: error)
        }
    }

    func etcdRevision(_ record: MoveRecord) async throws(RagError) -> Int64? {
        try await store.etcd.get(record.key)?.modRevision
    }
}
