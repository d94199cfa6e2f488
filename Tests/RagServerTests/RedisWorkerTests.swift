import Foundation
import RagClient
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
        // Nothing is left pending in the consumer group.
        #expect(try redis.cli("XPENDING", "ragd:jobs:stream:index", "workers").hasPrefix("0"))
        await client.close()
    }
}
