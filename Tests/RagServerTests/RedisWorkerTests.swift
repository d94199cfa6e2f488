import Foundation
import RagClient
import RagServer
import RagCore
import RagTesting
import RagWire
import Testing

/// Two coordinator processes share one Redis Streams job queue as workers over
/// the same shard node. A failpoint stops the first worker at an exact batch of
/// the job: SIGKILL (the job is re-delivered after the visibility timeout), or a
/// pause followed by SIGTERM (the worker hands the job back at once).
@Suite struct RedisWorkerTests {
    @Test func aKilledWorkersJobIsRedeliveredToTheOtherWorker() async throws {
        let redis = try await RedisProcess.launch()
        defer { redis.stop() }
        let cluster = try await LocalCluster.launch(shards: 1, replicas: 1)
        defer { cluster.stop() }
        let common = ["--role", "coordinator", "--cluster", cluster.clusterFile] + TestCertificates.shared.clusterFlags + ["--jobs", "redis", "--jobs-redis", "127.0.0.1:\(redis.port)",
                      "--job-visibility-timeout", "2", "--job-batch-size", "8"]
        func worker(_ name: String, failpoint: String? = nil) async throws -> RagdProcess {
            try await RagdProcess.launch(dataDirectory: cluster.root + "/" + name, extraArguments: common + ["--worker-name", name],
                            environment: failpoint.map { ["RAGD_FAILPOINT": $0] } ?? [:])
        }
        let n = 2000
        let docs = (0..<n).map { RagDocument(id: "r\($0)", text: "Redelivered document \($0) names marker\($0).") }

        // worker-a dies (SIGKILL) right after committing the job's third batch.
        let a = try await worker("worker-a", failpoint: "job-batch:3:kill")
        let job = try await a.client().submitIndexJob(docs, collection: "shared", partBytes: 16_384)  // several parts
        #expect(["queued", "running"].contains(job.state) && job.progressTotal == UInt64(n))  // a waiting worker may take it at once
        #expect(job.backend == "redis")
        for _ in 0..<600 where a.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!a.isRunning)
        let b = try await worker("worker-b")
        let client = b.client()
        let done = try await client.awaitJob(job.id, seconds: 120)
        #expect(done.state == "succeeded" && done.worker == "worker-b" && done.attempts == 2)
        #expect(done.errors == ["attempt 1: worker worker-a stopped renewing its claim; re-delivered to worker-b"])
        let result = try Ragd_V1_IndexResponse(serializedBytes: done.result)
        #expect(result.unchanged == 24 && result.documents == UInt32(n - 24))  // three batches of 8 were in before the kill
        let stats = try await client.stats(collection: "shared").collections.first
        #expect(stats?.documents == UInt64(n))
        #expect(stats?.chunks == UInt64(n))  // one chunk each: the re-run duplicated nothing
        #expect(try await client.query("marker1999", collection: "shared", topK: 1, mode: .keyword).sources.first?.documentID == "r1999")
        await client.close()
        #expect(await b.stop() == 0)

        // worker-a again, pausing after the second batch; SIGTERM makes it hand the job back.
        let a2 = try await worker("worker-a", failpoint: "job-batch:2:pause")
        let c2 = a2.client()
        let second = try await c2.submit(indexSpec(docs, collection: "shared2"))
        var state = try await c2.job(second.id)
        for _ in 0..<600 where state.progressDone < 16 {
            try await Task.sleep(for: .milliseconds(50))
            state = try await c2.job(second.id)
        }
        #expect(state.state == "running" && state.worker == "worker-a" && state.progressDone == 16)
        await c2.close()
        #expect(await a2.stop() == 0)
        let b2 = try await worker("worker-b")
        let c3 = b2.client()
        let handedOver = try await c3.awaitJob(second.id, seconds: 120)
        #expect(handedOver.state == "succeeded" && handedOver.worker == "worker-b" && handedOver.attempts == 2)
        #expect(handedOver.errors == ["attempt 1: interrupted by a worker stop (worker-a)"])
        #expect(try Ragd_V1_IndexResponse(serializedBytes: handedOver.result).unchanged == 16)
        #expect(try await c3.stats(collection: "shared2").collections.first?.documents == UInt64(n))
        await c3.close()
        // Nothing is left pending in the consumer group.
        #expect(try redis.cli("XPENDING", "ragd:jobs:stream:index", "workers").hasPrefix("0"))
    }
}

/// The Redis queue's claim protocol, driven directly: two queue objects stand
/// for two worker processes.
@Suite struct RedisJobQueueTests {
    @Test func aTakenOverClaimIsLostToItsOldWorkerAndSilentWorkersLeaveTheGroup() async throws {
        let redis = try await RedisProcess.launch()
        defer { redis.stop() }
        // Three objects stand for worker processes; only the visibility timeout differs.
        let q1 = RedisJobQueue(host: "127.0.0.1", port: redis.port, visibilityTimeout: .seconds(1))
        let patient = RedisJobQueue(host: "127.0.0.1", port: redis.port, visibilityTimeout: .seconds(600))
        let q2 = RedisJobQueue(host: "127.0.0.1", port: redis.port, visibilityTimeout: .seconds(1))
        try await q1.create(id: "j1", kind: "query", spec: Data([1, 2, 3]), part: nil, total: 1, staging: false)
        #expect(try await q2.waiting(kind: "query") == 1)
        let first = try #require(try await q1.claim(kind: "query", worker: "w1"))
        #expect(first.id == "j1" && first.attempt == 1 && first.spec == Data([1, 2, 3]))
        #expect(try await q1.heartbeat(id: "j1", worker: "w1") == .owned)
        #expect(try await patient.claim(kind: "query", worker: "w3") == nil)  // held, and not idle for 600 s
        try await Task.sleep(for: .milliseconds(1300))
        let second = try #require(try await q2.claim(kind: "query", worker: "w2"))
        #expect(second.attempt == 2)
        #expect(try await q1.heartbeat(id: "j1", worker: "w1") == .lost)
        #expect(try await q2.heartbeat(id: "j1", worker: "w2") == .owned)
        #expect(try await q2.progress(id: "j1", worker: "w2", done: 1) == .owned)
        #expect(try await q1.progress(id: "j1", worker: "w1", done: 1) == .lost)
        try await q2.finish(id: "j1", result: Data([9]))
        let j = try #require(try await q1.get(id: "j1"))
        #expect(j.state == "succeeded" && j.worker == "w2" && j.result == Data([9]) && j.attempts == 2)
        #expect(j.errors == ["attempt 1: worker w1 stopped renewing its claim; re-delivered to w2"])
        #expect(try redis.cli("XPENDING", "ragd:jobs:stream:query", "workers").hasPrefix("0"))
        // w1 and w3 are silent from now on; w2 keeps polling until its sweep drops them.
        var consumers = ""
        for _ in 0..<150 {
            _ = try await q2.claim(kind: "query", worker: "w2")
            consumers = try redis.cli("XINFO", "CONSUMERS", "ragd:jobs:stream:query", "workers")
            if !consumers.contains("w1") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(!consumers.contains("w1") && consumers.contains("w2"))

        // Cancelled from another process while running: the worker learns it at its next renewal or progress.
        try await q1.create(id: "j2", kind: "index", spec: Data([4]), part: Data([5]), total: 10, staging: false)
        _ = try #require(try await q2.claim(kind: "index", worker: "w2"))
        #expect(try await q1.cancel(id: "j2"))
        #expect(try await q2.progress(id: "j2", worker: "w2", done: 5) == .cancelled)
        #expect(try await q2.heartbeat(id: "j2", worker: "w2") == .cancelled)
        await q2.release(id: "j2")
        #expect(try await q1.get(id: "j2")?.state == "cancelled")
        #expect(try await q1.cancel(id: "j2") == false)
        #expect(try redis.cli("XPENDING", "ragd:jobs:stream:index", "workers").hasPrefix("0"))
        #expect(try redis.cli("EXISTS", "ragd:jobs:job:j2:parts").hasPrefix("0"))

        // Redis loses everything (a restart without persistence): workers recover.
        _ = try redis.cli("FLUSHALL")
        var recovered = false
        for _ in 0..<5 {
            do { _ = try await q2.claim(kind: "index", worker: "w2"); recovered = true; break } catch { continue }
        }
        #expect(recovered)
        try await q1.create(id: "j3", kind: "index", spec: Data([6]), part: Data([7]), total: 1, staging: false)
        #expect(try await q2.claim(kind: "index", worker: "w2")?.id == "j3")
    }
}
