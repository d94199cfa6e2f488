import Foundation
import Logging
import RagCore

/// Where a coordinator learns the shard layout: a cluster file, or etcd
/// (`/ragd/cluster/layout`), which the first coordinator started with
/// `--cluster FILE --etcd …` fills. From then on etcd is the source of truth:
/// every coordinator started with `--etcd` alone uses the same layout.
enum ClusterLayout {
    static let key = "/ragd/cluster/layout"

    static func resolve(file: ClusterConfiguration?, etcd: EtcdClient?, logger: Logger) async throws(RagError) -> ClusterConfiguration {
        guard let etcd else {
            guard let file else { throw .invalidArgument("--role coordinator needs --cluster FILE or --etcd") }
            return file
        }
        if let file {
            let data: Data
            do { data = try JSONEncoder().encode(file) } catch { throw RagError(.internal, "cluster layout: \(error)") }
            let (stored, created) = try await etcd.create(key, data)
            if created { logger.info("published the cluster layout (\(file.shards.count) shards) to etcd") }
            let layout = try decode(stored.value)
            if !created, layout != file {
                logger.warning("etcd already holds another cluster layout; using etcd's (\(layout.shards.count) shards), not --cluster")
            }
            return layout
        }
        guard let stored = try await etcd.get(key) else {
            throw .failedPrecondition("etcd holds no cluster layout yet: start one coordinator with --cluster FILE --etcd …")
        }
        return try decode(stored.value)
    }

    static func decode(_ data: Data) throws(RagError) -> ClusterConfiguration {
        let c: ClusterConfiguration
        do { c = try JSONDecoder().decode(ClusterConfiguration.self, from: data) } catch {
            throw RagError(.dataLoss, "the cluster layout in etcd is not valid: \(error)")
        }
        try c.validate()
        return c
    }
}
