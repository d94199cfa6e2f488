import Foundation
import Logging
import RagCore
import RagWire

/// The background comparison of replicas, run by the mover every
/// `--anti-entropy-interval`: for every partition and collection, each
/// in-sync replica against the primary, by sequence number and digest.
///
/// - behind the primary: the missing entries are sent from the primary's log
///   (a write whose replica could not be taken out of the in-sync set was not
///   acknowledged, but the replica must not stay without it);
/// - at the same sequence number with another digest, or ahead of the primary
///   (an old primary's unacknowledged entry): taken out of the in-sync set,
///   so recovery copies it again.
///
/// Every repair is logged.
struct AntiEntropy {
    let mover: PartitionMover
    var cluster: Cluster { mover.cluster }
    var logger: Logger { mover.logger }

    struct Report: Sendable {
        var compared = 0
        var filled = 0
        var dropped: [String] = []
    }

    func pass(_ placement: Placement) async -> Report {
        var report = Report()
        for (p, slot) in placement.slots.enumerated() where slot.joining.isEmpty {
            guard let primary = slot.primary, let source = placement.members[primary]?.address else { continue }
            let others = slot.writers.filter { $0 != primary }
            guard !others.isEmpty,
                  let entries = try? await mover.call(source, .shardSlot, Ragd_V1_ShardSlotRequest.with { $0.partition = UInt32(p) },
                                                      as: Ragd_V1_ShardSlotResponse.self).entries else { continue }
            for id in others {
                guard let target = placement.members[id]?.address else { continue }
                for entry in entries {
                    var key = entry.shard
                    key.placementVersion = UInt64(placement.version)
                    do {
                        if let why = try await compare(key, target: target, source: source) {
                            report.dropped.append("\(key.collection)/\(p) on \(id)")
                            logger.error("anti-entropy: partition \(p) of \(key.collection) on \(id): \(why); taking it out of sync to copy it again")
                            try await cluster.changeSlot(p, from: slot) { s in s.dropInSync([id]) }
                            break
                        }
                        report.compared += 1
                    } catch let e as FilledEntries {
                        report.filled += Int(e.count)
                        logger.warning("anti-entropy: partition \(p) of \(key.collection) on \(id) was \(e.count) entries behind the primary; sent them")
                    } catch {
                        logger.debug("anti-entropy: partition \(p) of \(key.collection) on \(id): \(error)")
                    }
                }
            }
        }
        return report
    }

    struct FilledEntries: Error { var count: UInt64 }

    /// Why a replica at the primary's sequence number does not match it (nil
    /// when it does), with what each side holds: the log line is what an
    /// operator has when a replica is copied again and again.
    static func difference(replica r: Ragd_V1_ShardCountsResponse, primary p: Ragd_V1_ShardCountsResponse) -> String? {
        if r.seqVersion != p.seqVersion {
            return "its entry \(r.seq) was ordered at placement version \(r.seqVersion), the primary's at \(p.seqVersion)"
        }
        guard r.digest != p.digest else { return nil }
        return "at entry \(r.seq) its documents differ from the primary's (digest \(String(r.digest, radix: 16)) against \(String(p.digest, radix: 16))); "
            + "\(r.documents) documents and \(r.chunks) chunks against \(p.documents) and \(p.chunks)\(r.receiving ? "; it is receiving a copy" : "")\(p.receiving ? "; the primary is receiving a copy" : "")"
    }

    /// nil when the copies agree; the reason when `target` must be copied
    /// again; throws `FilledEntries` after sending it what it lacked.
    func compare(_ key: Ragd_V1_ShardKey, target: String, source: String) async throws -> String? {
        func state(_ a: String) async throws -> Ragd_V1_ShardCountsResponse {
            try await mover.call(a, .shardCounts, Ragd_V1_ShardCountsRequest.with { $0.shard = key }, as: Ragd_V1_ShardCountsResponse.self)
        }
        let before = try await state(source)
        let other = try await state(target)
        if other.seq < before.seq {
            guard try await ReplicaSync.isPrefix(target: other, primary: cluster.node(address: source).client, key: key, timeout: .seconds(30)) else {
                return "its entry \(other.seq) is not the primary's"
            }
            let last = try await ReplicaSync.fill(target: cluster.node(address: target).client, primary: cluster.node(address: source).client, key: key,
                                                  after: other.seq, upTo: before.seq, timeout: .seconds(30))
            if last > other.seq { throw FilledEntries(count: last - other.seq) }
            return nil
        }
        if other.seq == before.seq {
            return Self.difference(replica: other, primary: before)
        }
        // Ahead, unless the primary moved on between the two reads.
        let after = try await state(source)
        return other.seq > after.seq ? "it applied entry \(other.seq), which the primary (at \(after.seq)) never ordered" : nil
    }
}
