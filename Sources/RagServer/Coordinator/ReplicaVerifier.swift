import RagCore
import RagStore
import RagWire

/// Compares every in-sync replica of every partition for `ragctl cluster
/// verify`: at the same sequence number their digests (a hash over every
/// document id and content hash) must be equal; otherwise, or when they stay
/// at different sequence numbers (writes in flight), document by document. A
/// difference is looked at again a moment later before it is reported.
/// Replicas out of sync (catching up) and replicas that do not answer are
/// listed as skipped rather than compared.
struct ReplicaVerifier {
    let cluster: Cluster

    struct Mismatch: Sendable {
        var collection: String
        var partition: Int
        var documentID: String
        var hashes: [String: UInt64]
    }

    struct Report: Sendable {
        var partitions = 0
        var replicas = 0
        var documents = 0
        var mismatches: [Mismatch] = []
        var skipped: [String] = []
    }

    func verify(_ collections: [CollectionInfo]) async -> Report {
        var report = Report()
        for info in collections.sorted(by: { $0.name < $1.name }) {
            for p in 0..<info.partitions {
                guard let route = try? cluster.route(p) else {
                    report.skipped.append("\(info.name)/\(p): no node holds the partition")
                    continue
                }
                let key = Ragd_V1_ShardKey.with {
                    $0.collection = info.name
                    $0.partition = UInt32(p)
                    $0.placementVersion = UInt64(max(0, route.version))
                }
                let slot = cluster.placement.slots[p]
                for id in slot.replicas where !slot.readers.contains(id) {
                    report.skipped.append("\(info.name)/\(p) on \(id): out of sync, catching up from the primary")
                }
                if let states = await states(route.replicas, key), states.count == route.replicas.count,
                   Set(states.map(\.seq)).count == 1, Set(states.map(\.digest)).count == 1 {
                    report.partitions += 1
                    report.replicas += states.count
                    report.documents += Int(states[0].documents)
                    continue
                }
                var copies: [String: [String: UInt64]] = [:]
                for r in route.replicas {
                    do { copies[r.address] = try await hashes(r, key, ids: []) } catch {
                        report.skipped.append("\(info.name)/\(p) on \(r.address): \(RagError(from: error).message)")
                    }
                }
                report.partitions += 1
                report.replicas += copies.count
                let ids = Set(copies.values.flatMap(\.keys))
                report.documents += ids.count
                guard copies.count > 1 else { continue }
                var differ = ids.filter { id in Set(copies.values.map { $0[id] }).count > 1 }.sorted()
                guard !differ.isEmpty else { continue }
                // A second look: writes in flight settle within a moment.
                try? await Task.sleep(for: .milliseconds(500))
                var again: [String: [String: UInt64]] = [:]
                for r in route.replicas where copies[r.address] != nil {
                    again[r.address] = (try? await hashes(r, key, ids: differ)) ?? copies[r.address]
                }
                differ = differ.filter { id in Set(again.values.map { $0[id] }).count > 1 }
                for id in differ {
                    report.mismatches.append(Mismatch(collection: info.name, partition: p, documentID: id,
                                                      hashes: again.compactMapValues { $0[id] }))
                }
            }
        }
        return report
    }

    /// Every replica's sequence number and digest, at one sequence number if
    /// they get there within a moment (nil when one does not answer).
    func states(_ replicas: [Replica], _ key: Ragd_V1_ShardKey) async -> [Ragd_V1_ShardCountsResponse]? {
        var out: [Ragd_V1_ShardCountsResponse] = []
        for round in 0..<10 {
            out = []
            for r in replicas {
                guard let s = try? await r.client.call(.shardCounts, Ragd_V1_ShardCountsRequest.with { $0.shard = key },
                                                       as: Ragd_V1_ShardCountsResponse.self, timeout: .seconds(10)) else { return nil }
                out.append(s)
            }
            if Set(out.map(\.seq)).count == 1 { return out }
            try? await Task.sleep(for: .milliseconds(100 * (round + 1)))
        }
        return out
    }

    func hashes(_ r: Replica, _ key: Ragd_V1_ShardKey, ids: [String]) async throws -> [String: UInt64] {
        try await r.client.call(.shardHashes, Ragd_V1_ShardHashesRequest.with { $0.shard = key; $0.ids = ids },
                                as: Ragd_V1_ShardHashesResponse.self, timeout: .seconds(30)).hashes
    }
}
