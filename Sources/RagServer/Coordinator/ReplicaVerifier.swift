import RagCore
import RagStore
import RagWire

/// Compares every replica of every partition, document by document (content
/// hashes), for `ragctl cluster verify`. A difference is looked at again a
/// moment later before it is reported, so a write still being applied is not
/// taken for drift. Replicas with hinted writes pending here, and replicas
/// that do not answer, are listed as skipped rather than compared.
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
                var copies: [String: [String: UInt64]] = [:]
                for r in route.replicas {
                    let pending = cluster.hints.count(r.address)
                    if pending > 0 {
                        report.skipped.append("\(info.name)/\(p) on \(r.address): catching up (\(pending) hinted writes)")
                        continue
                    }
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

    func hashes(_ r: Replica, _ key: Ragd_V1_ShardKey, ids: [String]) async throws -> [String: UInt64] {
        try await r.client.call(.shardHashes, Ragd_V1_ShardHashesRequest.with { $0.shard = key; $0.ids = ids },
                                as: Ragd_V1_ShardHashesResponse.self, timeout: .seconds(30)).hashes
    }
}
