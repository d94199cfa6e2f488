import Foundation
import RagClient
import RagCore
import RagTesting
import RagWire
import Testing

/// #14 (first part): coordinators that share etcd share the cluster layout, the
/// collection catalog and the write generations.
@Suite struct ControlPlaneTests {
    /// Three coordinators, one etcd: a collection created through one is served by
    /// the others with the same answers, and a write through one is never answered
    /// stale through another (cache on, each coordinator with its own L2).
    @Test func coordinatorsShareCatalogAndGenerations() async throws {
        let etcd = try await EtcdProcess.launch()
        let cluster = try await LocalCluster.launch(shards: 2, replicas: 1, etcd: etcd.endpoint)
        defer { cluster.stop() }
        let b = try await cluster.launchCoordinator("coord-b")
        let c = try await cluster.launchCoordinator("coord-c")
        defer { b.kill9(); c.kill9() }
        let ca = cluster.client(), cb = b.client(), cc = c.client()
        _ = try await ca.index(Fixtures.documents, collection: "kb")
        let expected = try await ca.query("how is a leader elected in Raft consensus", collection: "kb", topK: 3, noCache: true)
        for other in [cb, cc] {
            let r = try await other.query("how is a leader elected in Raft consensus", collection: "kb", topK: 3)
            #expect(r.sources.map(\.chunkID) == expected.sources.map(\.chunkID))
            #expect(zip(r.sources, expected.sources).allSatisfy { $0.score == $1.score })
            #expect(try await other.listCollections().map(\.name) == ["kb"])
        }
        // Cached on B, then written through A: B's next answer includes the write.
        for round in 0..<3 {
            let word = ["quokka", "axolotl", "pangolin"][round]
            let before = try await cb.query("\(word) facts", collection: "kb", topK: 10, mode: .keyword)
            let again = try await cb.query("\(word) facts", collection: "kb", topK: 10, mode: .keyword)
            #expect(again.cached, "round \(round): the repeat should be served from B's cache")
            #expect(!before.sources.contains { $0.documentID == word })
            _ = try await ca.index([RagDocument(id: word, text: "The \(word) facts: a \(word) is an animal.")], collection: "kb")
            let after = try await cb.query("\(word) facts", collection: "kb", topK: 10, mode: .keyword)
            #expect(after.sources.first?.documentID == word, "round \(round): B answered from before A's write")
        }
        // Two coordinators creating the same collection at once agree on one.
        async let x = ca.index([RagDocument(id: "x", text: "from a")], collection: "race")
        async let y = cc.index([RagDocument(id: "y", text: "from c")], collection: "race")
        _ = try await (x, y)
        #expect(try await cb.stats(collection: "race").collections.first?.documents == 2)
        for client in [ca, cb, cc] { await client.close() }
    }

    /// etcd down: queries go on (without the cache, whose generation cannot be
    /// read), writes are refused with UNAVAILABLE and nothing is written.
    @Test func etcdDownRefusesWritesAndKeepsServingQueries() async throws {
        let etcd = try await EtcdProcess.launch()
        let cluster = try await LocalCluster.launch(shards: 1, replicas: 1, etcd: etcd.endpoint)
        defer { cluster.stop() }
        let b = try await cluster.launchCoordinator("coord-b")
        defer { b.kill9() }
        let ca = cluster.client(), cb = b.client()
        _ = try await ca.index(Fixtures.documents, collection: "kb")
        _ = try await cb.query("raft leader election", collection: "kb", topK: 3)  // B opens kb
        etcd.stop()
        let r = try await cb.query("raft leader election", collection: "kb", topK: 3)
        #expect(r.sources.first?.documentID == "raft" && !r.cached)
        let health = try await cb.health()
        #expect(health.status == "SERVING" && health.degraded.contains("etcd unreachable"), "\(health)")
        do {
            _ = try await ca.index([RagDocument(id: "late", text: "written while etcd is down")], collection: "kb")
            Issue.record("a write was acknowledged without etcd")
        } catch {
            #expect(error.code == .unavailable, "\(error)")
        }
        do {
            _ = try await ca.index([RagDocument(id: "n", text: "new collection")], collection: "new")
            Issue.record("a collection was created without etcd")
        } catch {
            #expect(error.code == .unavailable, "\(error)")
        }
        #expect(try await cb.query("written while etcd is down", collection: "kb", topK: 3, mode: .keyword).sources.allSatisfy { $0.documentID != "late" })
        await ca.close()
        await cb.close()
    }

    /// etcd hung (SIGSTOP, connections accepted and never answered): queries go on
    /// without the cache, Health says degraded, writes are refused; once etcd
    /// answers again, writes go through and are seen by the other coordinator.
    @Test func aHungEtcdDegradesAndRecovers() async throws {
        let etcd = try await EtcdProcess.launch()
        let cluster = try await LocalCluster.launch(shards: 1, replicas: 1, etcd: etcd.endpoint)
        defer { cluster.stop() }
        let b = try await cluster.launchCoordinator("coord-b")
        defer { b.kill9() }
        let ca = cluster.client(timeout: .seconds(20)), cb = b.client(timeout: .seconds(20))
        _ = try await ca.index(Fixtures.documents, collection: "kb")
        _ = try await cb.query("raft leader election", collection: "kb", topK: 3)
        etcd.pause()
        for _ in 0..<3 {
            let r = try await cb.query("raft leader election", collection: "kb", topK: 3)
            #expect(r.sources.first?.documentID == "raft" && !r.cached)
        }
        #expect(try await cb.health().degraded.contains("etcd unreachable"))
        #expect(await code { _ = try await ca.index([RagDocument(id: "hung", text: "written while etcd hangs")], collection: "kb") } == .unavailable)
        etcd.resume()
        #expect(await eventually(seconds: 15) { await code { _ = try await ca.index([RagDocument(id: "back", text: "written once etcd is back: wombat")], collection: "kb") } == .ok })
        #expect(try await cb.query("wombat", collection: "kb", topK: 1, mode: .keyword).sources.first?.documentID == "back")
        #expect(try await cb.health().degraded.isEmpty)
        await ca.close()
        await cb.close()
    }

    /// Coordinators sharing etcd share API keys: a key bootstrapped into etcd opens
    /// every coordinator; one made or revoked through one coordinator holds on the
    /// others within the refresh interval (a second).
    @Test func keysAreSharedThroughEtcd() async throws {
        let etcd = try await EtcdProcess.launch()
        let boot = try await run([RagdProcess.binary, "keys", "create", "--etcd", etcd.endpoint, "--role", "admin", "--name", "boot"])
        #expect(boot.status == 0, "\(boot.errors)")
        let admin = boot.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let cluster = try await LocalCluster.launch(shards: 1, replicas: 1, etcd: etcd.endpoint)
        defer { cluster.stop() }
        let b = try await cluster.launchCoordinator("coord-b")
        defer { b.kill9() }
        let aAdmin = cluster.coordinator.client(apiKey: admin), bAdmin = b.client(apiKey: admin)
        #expect(try await bAdmin.health().status == "SERVING")
        #expect(await code { _ = try await b.client().health() } == .unauthenticated)
        let reader = try await aAdmin.createKey(name: "r", role: "read")
        let bReader = b.client(apiKey: reader.token)
        #expect(await eventually { await code { _ = try await bReader.health() } == .ok })
        _ = try await bAdmin.revokeKey(id: reader.key.id)
        let aReader = cluster.coordinator.client(apiKey: reader.token)
        #expect(await eventually { await code { _ = try await aReader.health() } == .unauthenticated })
        for c in [aAdmin, bAdmin, bReader, aReader] { await c.close() }
    }

    /// Every node registers under a lease: ClusterStatus (and `ragctl cluster nodes`)
    /// lists the shards and coordinators with their addresses; a shard killed with
    /// SIGKILL drops out when its lease expires and is listed as unregistered; back,
    /// it registers again.
    @Test func nodesRegisterUnderLeases() async throws {
        let etcd = try await EtcdProcess.launch()
        let cluster = try await LocalCluster.launch(shards: 2, replicas: 1, etcd: etcd.endpoint)
        defer { cluster.stop() }
        let c = cluster.client()
        _ = try await c.index(Fixtures.documents, collection: "kb")
        func status() async throws -> ClusterStatus { try await c.clusterStatus(timeout: hangGuard) }
        #expect(await eventually { (try? await status().nodes.count) == 3 })
        let s = try await status()
        #expect(s.shards == UInt32(LocalCluster.testPartitions) && s.replicationFactor == 1 && s.unregistered.isEmpty && s.members.count == 2)
        let shards = s.nodes.filter { $0.role == "shard" }
        #expect(shards.count == 2 && shards.allSatisfy { $0.inLayout && !$0.internalAddress.isEmpty && $0.freeBytes > 0 })
        #expect(s.nodes.filter { $0.role == "coordinator" }.map(\.publicAddress) == ["127.0.0.1:\(cluster.coordinator.port)"])
        #expect(await eventually { (try? await status().nodes.filter { $0.role == "shard" }.map(\.chunks).reduce(0, +)) ?? 0 > 0 })
        let ctl = try await run([CLIIndexTests.ragctl, "cluster", "nodes", "--server", "127.0.0.1:\(cluster.coordinator.port)"])
        #expect(ctl.status == 0 && ctl.output.contains("\(LocalCluster.testPartitions) logical partitions") && ctl.output.contains("member"), "\(ctl.output) \(ctl.errors)")
        let victim = cluster.nodes[1][0]
        cluster.kill(shard: 1, replica: 0)
        #expect(await eventually(seconds: 20) { (try? await status().unregistered) == ["127.0.0.1:\(victim.internalPort)"] })
        #expect(try await status().nodes.count == 2)
        try await cluster.relaunch(shard: 1, replica: 0)
        #expect(await eventually(seconds: 20) { (try? await status())?.nodes.count == 3 })
        #expect(try await status().unregistered.isEmpty)
        await c.close()
    }

    /// True once `condition` holds, polling for up to `seconds`.

    /// Experiments are defined once for the cluster: created through one
    /// coordinator, listed and applied (same variant for the same user) through
    /// another; two coordinators cannot both start one on a collection; stopped
    /// through the other, stopped everywhere.
    @Test func experimentsAreSharedThroughEtcd() async throws {
        let etcd = try await EtcdProcess.launch()
        let cluster = try await LocalCluster.launch(shards: 1, replicas: 1, etcd: etcd.endpoint)
        defer { cluster.stop() }
        let b = try await cluster.launchCoordinator("coord-b")
        defer { b.kill9() }
        let ca = cluster.client(), cb = b.client()
        _ = try await ca.index(Fixtures.documents, collection: "kb")
        let e = experiment("modes", [("control", 0.5, nil), ("kw", 0.5, Ragd_V1_VariantConfig.with { $0.mode = .keyword })])
        _ = try await ca.create(e)
        #expect(await code { _ = try await cb.create(experiment("other", [("only", 1.0, nil)])) } == .failedPrecondition)
        #expect(await code { _ = try await cb.create(e) } == .alreadyExists)
        #expect(await eventually { (try? await cb.call(.listExperiments, Ragd_V1_ListExperimentsRequest(), as: Ragd_V1_ListExperimentsResponse.self, timeout: hangGuard))?
            .experiments.map(\.name) == ["modes"] })
        for user in ["ann", "bob", "cy", "dee", "eve"] {
            let x = try await ca.query("raft leader", collection: "kb", topK: 3, userID: user, noCache: true)
            let y = try await cb.query("raft leader", collection: "kb", topK: 3, userID: user, noCache: true)
            #expect(x.experiment == "modes" && x.variant == y.variant && x.experiment == y.experiment, "\(user): \(x.variant) vs \(y.variant)")
        }
        _ = try await cb.call(.stopExperiment, Ragd_V1_StopExperimentRequest.with { $0.name = "modes" }, as: Ragd_V1_StopExperimentResponse.self, timeout: hangGuard)
        #expect(await eventually { (try? await ca.call(.listExperiments, Ragd_V1_ListExperimentsRequest(), as: Ragd_V1_ListExperimentsResponse.self, timeout: hangGuard))?
            .experiments.first?.state == "stopped" })
        _ = try await ca.create(experiment("next", [("only", 1.0, nil)]))  // the collection is free again
        for c in [ca, cb] { await c.close() }
    }
}
