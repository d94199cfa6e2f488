import Foundation
import RagClient
import RagCore
import RagServer
import RagTesting
import RagWire
import Testing

/// #13: identities (API keys, roles, collection scopes, job ownership, rate
/// limits), TLS and mutual TLS, and the internal listener of shard nodes.
@Suite struct SecurityTests {
    static let publicMethods = RagMethod.allCases.filter { !$0.rawValue.hasPrefix("Shard") }

    /// A client of the same server with another key.
    func client(_ server: RagServer, key: String?) -> RagClient {
        RagClient(host: "127.0.0.1", port: server.localAddress!.port!, defaultTimeout: hangGuard, apiKey: key)
    }

    /// Once a key exists, every public RPC (Health included) refuses a call without
    /// a valid key, and every RPC above a key's role; both are counted in /metrics.
    @Test func everyRPCRefusesAnonymousAndWrongRoleCalls() async throws {
        try await withRagServer { open, server in
            // A server without keys is open (loopback development); the first key closes it.
            let admin = try await open.createKey(name: "ops", role: "admin").token
            #expect(await code { _ = try await open.health() } == .unauthenticated)
            let root = client(server, key: admin)
            let reader = client(server, key: try await root.createKey(name: "r", role: "read").token)
            let writer = client(server, key: try await root.createKey(name: "w", role: "write").token)
            let forged = client(server, key: "ragd_" + String(admin.dropFirst(5).prefix(9)) + "_" + String(repeating: "A", count: 43))
            let garbage = client(server, key: "not a key at all")
            let needs: [RagMethod: KeyRole] = [.index: .write, .indexStream: .write, .delete: .write, .clearCache: .admin,
                                               .createExperiment: .admin, .listExperiments: .admin, .stopExperiment: .admin,
                                               .experimentReport: .admin, .createKey: .admin, .listKeys: .admin, .revokeKey: .admin,
                                               .clusterStatus: .admin, .clusterChange: .admin, .clusterVerify: .admin,
                                               .createSnapshot: .admin, .listSnapshots: .admin, .deleteSnapshot: .admin, .readSnapshot: .admin,
                                               .uploadSnapshot: .admin, .restoreSnapshot: .admin]
            var expectedDenied = 0
            for m in Self.publicMethods {
                let payload = Data()
                func call(_ c: RagClient) async -> RagError.Code {
                    await code {
                        if m.isStreaming { for try await _ in try await c.streaming(m, payload: payload, timeout: hangGuard) {} }
                        else { _ = try await c.unary(m, payload: payload, timeout: hangGuard) }
                    }
                }
                #expect(await call(open) == .unauthenticated, "\(m) without a key")
                #expect(await call(forged) == .unauthenticated, "\(m) with a forged secret")
                #expect(await call(garbage) == .unauthenticated, "\(m) with garbage")
                let role = needs[m] ?? .read
                for (c, has) in [(reader, KeyRole.read), (writer, .write), (root, .admin)] {
                    let got = await call(c)
                    if has < role {
                        #expect(got == .permissionDenied, "\(m) with a \(has) key")
                        expectedDenied += 1
                    } else {
                        #expect(got != .permissionDenied && got != .unauthenticated, "\(m) with a \(has) key: \(got)")
                    }
                }
            }
            let samples = try await onThread { try scrape(port: server.metricsLocalAddress!.port!) }
            let counted = samples.filter { $0.name == "rag_rpc_errors_total" }
            let unauth = counted.filter { $0.labels["code"] == "UNAUTHENTICATED" }.map(\.value).reduce(0, +)
            let denied = counted.filter { $0.labels["code"] == "PERMISSION_DENIED" }.map(\.value).reduce(0, +)
            #expect(unauth == Double(3 * Self.publicMethods.count + 1))
            #expect(denied == Double(expectedDenied))
            for c in [root, reader, writer, forged, garbage] { await c.close() }
        }
    }

    /// The token is shown once and stored only as a hash; a revoked key stops at once.
    @Test func keysAreHashedAndRevocationIsImmediate() async throws {
        try await withRagServer { open, server in
            let (key, token) = try await open.createKey(name: "ci", role: "admin")
            #expect(token.hasPrefix("ragd_\(key.id)_"))
            let secret = String(token.dropFirst("ragd_\(key.id)_".count))  // base64url: may itself hold "_"
            #expect(secret.count == 43)
            let file = try Data(contentsOf: URL(fileURLWithPath: server.configuration.dataDirectory + "/keys.sqlite"))
            #expect(file.range(of: Data(secret.utf8)) == nil)
            let admin = client(server, key: token)
            let other = try await admin.createKey(name: "tmp", role: "read")
            let temp = client(server, key: other.token)
            _ = try await temp.health()
            let listed = try await admin.listKeys()
            #expect(Set(listed.map(\.id)) == [key.id, other.key.id])
            try await admin.revokeKey(id: other.key.id)
            #expect(await code { _ = try await temp.health() } == .unauthenticated)
            #expect(try await admin.listKeys().first { $0.id == other.key.id }?.revoked == true)
            // Revoking every key does not reopen the server.
            try await admin.revokeKey(id: key.id)
            #expect(await code { _ = try await open.health() } == .unauthenticated)
            #expect(await code { _ = try await admin.health() } == .unauthenticated)
            await admin.close()
            await temp.close()
        }
    }

    /// A key limited to collections sees and touches only those.
    @Test func collectionScopedKeysStayInTheirCollections() async throws {
        try await withRagServer { open, server in
            let admin = client(server, key: try await open.createKey(name: "a", role: "admin").token)
            _ = try await admin.index([RagDocument(id: "s", text: "secret plans of team b")], collection: "team-b")
            let a = client(server, key: try await admin.createKey(name: "team a", role: "write", collections: ["team-a"]).token)
            _ = try await a.index([RagDocument(id: "x", text: "notes of team a")], collection: "team-a")
            #expect(try await a.query("notes", collection: "team-a").sources.count == 1)
            #expect(await code { _ = try await a.query("plans", collection: "team-b") } == .permissionDenied)
            #expect(await code { _ = try await a.index([RagDocument(id: "p", text: "planted")], collection: "team-b") } == .permissionDenied)
            #expect(await code { _ = try await a.delete(["s"], collection: "team-b") } == .permissionDenied)
            #expect(await code { _ = try await a.stats(collection: "team-b") } == .permissionDenied)
            #expect(try await a.stats().collections.map(\.name) == ["team-a"])
            #expect(try await a.listCollections().map(\.name) == ["team-a"])
            #expect(await code { _ = try await a.submitQueryJob(Ragd_V1_QueryRequest.with { $0.collection = "team-b"; $0.query = "plans" }) } == .permissionDenied)
            #expect(try await admin.query("plans", collection: "team-b", noCache: true).sources.count == 1)  // untouched
            await admin.close()
            await a.close()
        }
    }

    /// Jobs and their results are visible only to the key that submitted them (and admins).
    @Test(arguments: ["sqlite", "redis"]) func jobsBelongToTheirSubmitter(backend: String) async throws {
        let redis = backend == "redis" ? try await RedisProcess.launch() : nil
        defer { redis?.stop() }
        try await withRagServer(configure: { c in
            if let redis { c.jobBackend = .redis(host: "127.0.0.1", port: redis.port) }
        }) { open, server in
            let admin = client(server, key: try await open.createKey(name: "a", role: "admin").token)
            _ = try await admin.index(Fixtures.documents, collection: "kb")
            let alice = client(server, key: try await admin.createKey(name: "alice", role: "read").token)
            let bob = client(server, key: try await admin.createKey(name: "bob", role: "write").token)
            let job = try await alice.submitQueryJob(Ragd_V1_QueryRequest.with { $0.collection = "kb"; $0.query = "raft leader election" })
            #expect(!job.owner.isEmpty)
            #expect(await code { _ = try await bob.job(job.id) } == .notFound)
            #expect(await code { _ = try await bob.cancelJob(job.id) } == .notFound)
            #expect(try await bob.jobs().isEmpty)
            #expect(try await alice.jobs().map(\.id) == [job.id])
            #expect(try await admin.jobs().map(\.id).contains(job.id))
            let done = try await alice.waitForJob(job.id, limit: .seconds(30))
            #expect(done.state == "succeeded" && !done.result.isEmpty)
            // A read key runs query jobs, not index jobs.
            #expect(await code { _ = try await alice.submitIndexJob([RagDocument(id: "n", text: "new")], collection: "kb") } == .permissionDenied)
            for c in [admin, alice, bob] { await c.close() }
        }
    }

    /// Token buckets per key: RESOURCE_EXHAUSTED with a retry-after in the frame
    /// metadata; other keys are not slowed; waiting that long is enough.
    @Test func rateLimitsAnswerWithRetryAfter() async throws {
        try await withRagServer { open, server in
            let admin = client(server, key: try await open.createKey(name: "a", role: "admin").token)
            _ = try await admin.index(Fixtures.documents, collection: "kb")
            let slow = client(server, key: try await admin.createKey(name: "slow", role: "write", queriesPerSecond: 1, documentsPerSecond: 1).token)
            // Ten at once: whatever the machine's load, they reach the bucket
            // (one query per second, burst one) within the same second.
            let outcomes = await withTaskGroup(of: RagError?.self) { group in
                for _ in 0..<10 {
                    group.addTask {
                        do { _ = try await slow.query("raft", collection: "kb", timeout: hangGuard); return nil } catch { return RagError(from: error) }
                    }
                }
                return await group.reduce(into: [RagError?]()) { $0.append($1) }
            }
            let e = try #require(outcomes.compactMap { $0 }.first)
            #expect(e.code == .resourceExhausted && e.message.contains("rate limit"))
            let wait = try #require(e.retryAfter)
            #expect(wait > .zero && wait <= .milliseconds(1001))
            for i in 0..<5 { _ = try await admin.query("raft \(i)", collection: "kb") }  // another key: not limited
            try await Task.sleep(for: wait + .milliseconds(50))
            _ = try await slow.query("raft again", collection: "kb")
            // A batch larger than the burst goes through once, then the key waits for
            // it: 20 s at one document per second, so a loaded machine cannot outlast it.
            _ = try await slow.index((0..<20).map { RagDocument(id: "d\($0)", text: "doc \($0)") }, collection: "kb")
            let next = await code { _ = try await slow.index([RagDocument(id: "e", text: "one more")], collection: "kb") }
            #expect(next == .resourceExhausted)
            await admin.close()
            await slow.close()
        }
    }

    /// The Python and C clients send keys and read the retry-after of a rate limit.
    @Test func pythonAndCClientsCarryKeysAndRetryAfter() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let created = try await run([RagdProcess.binary, "keys", "create", "--data-dir", dir, "--role", "admin", "--name", "boot"])
        let admin = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let server = try await RagdProcess.launch(dataDirectory: dir)
        defer { server.kill9() }
        let root = server.client(apiKey: admin)
        _ = try await root.index(Fixtures.documents, collection: "kb")
        let slow = try await root.createKey(name: "slow", role: "read", queriesPerSecond: 0.01).token
        await root.close()
        let script = """
            import os, sys
            sys.path.insert(0, sys.argv[1])
            import ragd_client as rc
            c = rc.RagdClient("127.0.0.1", int(sys.argv[2]), timeout=10)
            print(c.health().status)
            c.query("raft", "kb")
            try:
                c.query("raft", "kb")
                print("not limited")
            except rc.ResourceExhausted as e:
                print("limited", e.retry_after)
            try:
                rc.RagdClient("127.0.0.1", int(sys.argv[2]), timeout=10, api_key="ragd_k0_nope").health()
            except rc.RagdError as e:
                print(e.code_name)
            """
        let py = try await run(["python3", "-c", script, Repo.path("Clients/python"), "\(server.port)"], environment: ["RAGD_API_KEY": slow])
        let lines = py.output.split(whereSeparator: \.isNewline).map(String.init)
        #expect(lines.first == "SERVING", "\(py.output) \(py.errors)")
        let after = lines.count > 1 && lines[1].hasPrefix("limited ") ? Double(lines[1].dropFirst(8)) : nil
        #expect(after.map { $0 > 50 && $0 <= 100 } == true, "\(py.output)")
        #expect(lines.last == "UNAUTHENTICATED")
        let make = try await CClientBuild.shared.make()
        #expect(make.status == 0, "make: \(make.errors)")
        let cKey = try await server.client(apiKey: admin).createKey(name: "c", role: "read", queriesPerSecond: 0.01).token
        let query = [Repo.path("Clients/c/ragd-c-query"), "127.0.0.1", "\(server.port)", "kb", "raft"]
        let first = try await run(query, environment: ["RAGD_API_KEY": cKey])
        #expect(first.status == 0, "\(first.errors)")
        let second = try await run(query, environment: ["RAGD_API_KEY": cKey])
        #expect(second.status != 0 && second.errors.contains("RESOURCE_EXHAUSTED") && second.errors.contains("retry after"), "\(second.errors)")
    }

    /// Experiments are admin business; feedback counts only from the key that asked
    /// the query (request ids may be chosen by clients, so they can be guessed).
    @Test func feedbackCountsOnlyFromTheAskingKey() async throws {
        try await withRagServer { open, server in
            let admin = client(server, key: try await open.createKey(name: "a", role: "admin").token)
            _ = try await admin.index(Fixtures.documents, collection: "kb")
            let alice = client(server, key: try await admin.createKey(name: "alice", role: "read").token)
            let mallory = client(server, key: try await admin.createKey(name: "mallory", role: "write").token)
            #expect(await code { _ = try await mallory.create(experiment("ab", [("control", 0.5, nil), ("b", 0.5, nil)])) } == .permissionDenied)
            _ = try await admin.create(experiment("ab", [("control", 0.5, nil), ("b", 0.5, nil)]))
            let r = try await alice.query("raft leader election", collection: "kb", userID: "u1")
            #expect(r.experiment == "ab")
            #expect(await code { _ = try await mallory.feedback(r.queryID, thumbsUp: false) } == .notFound)
            #expect(try await alice.feedback(r.queryID, thumbsUp: true).experiment == "ab")
            for c in [admin, alice, mallory] { await c.close() }
        }
    }
}
