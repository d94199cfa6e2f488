import Foundation
import RagClient
import RagServer
import RagCore
import RagTesting
import RagWire
import Testing

/// Two coordinator processes share one Redis Streams job queue as workers over
/// the same shard node; the worker running a job is killed with -9.
@Suite struct RedisWorkerTests {
    @Test func aKilledWorkersJobIsRedeliveredToTheOtherWorker() async throws {
        let redis = try RedisProcess()
        defer { redis.stop() }
        let cluster = try LocalCluster(shards: 1, replicas: 1)
        defer { cluster.stop() }
        let common = ["--role", "coordinator", "--cluster", cluster.clusterFile, "--jobs", "redis", "--jobs-redis", "127.0.0.1:\(redis.port)",
                      "--job-visibility-timeout", "2", "--job-batch-size", "8"]
        var workers = [
            "worker-a": try RagdProcess(dataDirectory: cluster.root + "/worker-a", extraArguments: common + ["--worker-name", "worker-a"]),
            "worker-b": try RagdProcess(dataDirectory: cluster.root + "/worker-b", extraArguments: common + ["--worker-name", "worker-b"]),
        ]
        defer { for w in workers.values where w.isRunning { w.kill9() } }
        let n = 5000
        let docs = (0..<n).map { RagDocument(id: "r\($0)", text: "Redelivered document \($0) names marker\($0).") }
        let submitter = workers["worker-a"]!.client()
        let job = try await submitter.submit(indexSpec(docs, collection: "shared"))
        #expect(job.backend == "redis")
        var running = try await submitter.job(job.id)
        for _ in 0..<1000 where running.progressDone == 0 {
            try await Task.sleep(for: .milliseconds(5))
            running = try await submitter.job(job.id)
        }
        let victim = running.worker
        let survivor = victim == "worker-a" ? "worker-b" : "worker-a"
        #expect(workers[victim] != nil, "job claimed by \(victim.debugDescription)")
        workers[victim]?.kill9()
        await submitter.close()
        #expect(running.progressDone > 0 && running.progressDone < UInt64(n), "killed at \(running.progressDone): the job must be in flight")

        let client = workers[survivor]!.client()
        let done = try await client.waitForJob(job.id, seconds: 120)
        #expect(done.state == "succeeded")
        #expect(done.worker == survivor)
        #expect(done.attempts == 2)
        #expect(done.errors.count == 1 && done.errors[0].contains("worker \(victim) stopped renewing its claim; re-delivered to \(survivor)"))
        let stats = try await client.stats(collection: "shared").collections.first
        #expect(stats?.documents == UInt64(n))
        #expect(stats?.chunks == UInt64(n))  // one chunk each: the re-run duplicated nothing
        #expect(try await client.query("marker4999", collection: "shared", topK: 1, mode: .keyword).sources.first?.documentID == "r4999")
        await client.close()

        // A worker stopped gracefully (SIGTERM) hands its job straight back to the queue.
        workers[victim] = try RagdProcess(dataDirectory: cluster.root + "/" + victim, extraArguments: common + ["--worker-name", victim])
        let clients = workers.mapValues { $0.client() }
        let second = try await clients["worker-a"]!.submit(indexSpec(docs, collection: "shared2"))
        var state = try await clients["worker-a"]!.job(second.id)
        for _ in 0..<1000 where state.progressDone == 0 {
            try await Task.sleep(for: .milliseconds(5))
            state = try await clients["worker-a"]!.job(second.id)
        }
        let stopping = state.worker, other = stopping == "worker-a" ? "worker-b" : "worker-a"
        await clients[stopping]?.close()
        #expect(workers[stopping]?.terminate() == 0)
        #expect(state.progressDone < UInt64(n), "stopped at \(state.progressDone): the job must be in flight")
        let handedOver = try await clients[other]!.waitForJob(second.id, seconds: 120)
        #expect(handedOver.state == "succeeded" && handedOver.worker == other && handedOver.attempts == 2)
        #expect(handedOver.errors == ["attempt 1: interrupted by a worker stop (\(stopping))"])
        #expect(try await clients[other]!.stats(collection: "shared2").collections.first?.documents == UInt64(n))
        await clients[other]?.close()
        // Nothing is left pending in the consumer group.
        #expect(try redis.cli("XPENDING", "ragd:jobs:stream:index", "workers").hasPrefix("0"))
    }
}

/// The Redis queue's claim protocol, driven directly: two queue objects stand
/// for two worker processes.
@Suite struct RedisJobQueueTests {
    @Test func aTakenOverClaimIsLostToItsOldWorkerAndSilentWorkersLeaveTheGroup() async throws {
        let redis = try RedisProcess()
        defer { redis.stop() }
        let q1 = RedisJobQueue(host: "127.0.0.1", port: redis.port, visibilityTimeout: .seconds(1))
        let q2 = RedisJobQueue(host: "127.0.0.1", port: redis.port, visibilityTimeout: .seconds(1))
        try await q1.create(id: "j1", kind: "query", spec: Data([1, 2, 3]), part: nil, total: 1, staging: false)
        #expect(try await q2.waiting(kind: "query") == 1)
        let first = try #require(try await q1.claim(kind: "query", worker: "w1"))
        #expect(first.id == "j1" && first.attempt == 1 && first.spec == Data([1, 2, 3]))
        #expect(try await q1.heartbeat(id: "j1", worker: "w1") == .owned)
        #expect(try await q2.claim(kind: "query", worker: "w2") == nil)  // held, and renewed just now
        try await Task.sleep(for: .milliseconds(1300))
        let second = try #require(try await q2.claim(kind: "query", worker: "w2"))
        #expect(second.attempt == 2)
        #expect(try await q1.heartbeat(id: "j1", worker: "w1") == .lost)
        #expect(try await q2.heartbeat(id: "j1", worker: "w2") == .owned)
        #expect(try await q2.progress(id: "j1", done: 1))
        try await q2.finish(id: "j1", result: Data([9]))
        let j = try #require(try await q1.get(id: "j1"))
        #expect(j.state == "succeeded" && j.worker == "w2" && j.result == Data([9]) && j.attempts == 2)
        #expect(j.errors == ["attempt 1: worker w1 stopped renewing its claim; re-delivered to w2"])
        #expect(try redis.cli("XPENDING", "ragd:jobs:stream:query", "workers").hasPrefix("0"))
        // w1 is silent from now on; w2 keeps polling until the sweep drops w1.
        var consumers = ""
        for _ in 0..<60 {
            _ = try await q2.claim(kind: "query", worker: "w2")
            consumers = try redis.cli("XINFO", "CONSUMERS", "ragd:jobs:stream:query", "workers")
            if !consumers.contains("w1") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(!consumers.contains("w1") && consumers.contains("w2"))
    }
}
