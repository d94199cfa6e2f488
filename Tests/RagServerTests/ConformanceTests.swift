import Foundation
import RagClient
import RagCore
import RagTesting
import RagWire
import Testing

/// Paths inside the repository, from this file's location.
enum Repo {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }
}

/// Builds the C client (Clients/c) once per test run, whatever target is asked
/// for: tests run in parallel, and two `make`s in one folder overwrite each
/// other's outputs while a third test executes them.
actor CClientBuild {
    static let shared = CClientBuild()
    private var build: Task<(status: Int32, output: String, errors: String), any Error>?

    func make() async throws -> (status: Int32, output: String, errors: String) {
        if let build { return try await build.value }
        let task = Task { try await run(["make", "-s", "-C", Repo.path("Clients/c")]) }
        build = task
        return try await task.value
    }
}

/// Runs a command, returning its exit status and standard output.
@discardableResult
/// Runs a child process to completion on a thread of its own, so waiting for it
/// does not hold one of the few threads the concurrently running tests share.
/// `environment` adds variables for the child (through /usr/bin/env).
func run(_ args: [String], cwd: String? = nil, environment: [String: String] = [:]) async throws -> (status: Int32, output: String, errors: String) {
    let full = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + args
    return try await withCheckedThrowingContinuation { c in
        Thread { c.resume(with: Result { try runBlocking(full, cwd: cwd) }) }.start()
    }
}

func runBlocking(_ args: [String], cwd: String? = nil) throws -> (status: Int32, output: String, errors: String) {
    // A guard against a hung child, not a time limit: 20,000 documents through
    // `ragctl index` took over a minute on 2 cores beside the chaos test's clusters.
    try runChild("/usr/bin/env", args, directory: cwd, timeout: 600)
}

/// The Swift client's run of Tests/Conformance/scenarios.tsv (same format as the C and Python runners).
struct SwiftConformanceRunner {
    let ports: [String: Int]
    let collection: String
    /// TLS for the server under test ("main"); the fake servers speak plain TCP.
    var tls: ClientTLS? = nil
    var apiKey: String? = nil

    static func typed(_ v: Substring) -> MetadataValue {
        let raw = String(v.dropFirst(2))
        switch v.first {
        case "n": return .number(Double(raw)!)
        case "b": return .bool(raw == "true")
        default: return .string(raw)
        }
    }

    static func filter(_ text: String) -> MetadataFilter? {
        guard text != "-" else { return nil }
        let parts = text.split(separator: "&").map { c -> MetadataFilter in
            var c = Substring(c)
            let negated = c.first == "!"
            if negated { c = c.dropFirst() }
            let f: MetadataFilter
            if c.first == "?" {
                f = .compare(key: String(c.dropFirst()), op: .exists, values: [])
            } else if let at = c.firstIndex(of: "@") {
                f = .compare(key: String(c[..<at]), op: .in, values: c[c.index(after: at)...].split(separator: ",").map(typed))
            } else {
                let ops: [(String, MetadataFilter.Op)] = [("!=", .ne), ("<=", .lte), (">=", .gte), ("=", .eq), ("<", .lt), (">", .gt)]
                let (sym, op) = ops.first { c.contains($0.0) }!
                let r = c.range(of: sym)!
                f = .compare(key: String(c[..<r.lowerBound]), op: op, values: [typed(c[r.upperBound...])])
            }
            return negated ? .not(f) : f
        }
        return parts.count == 1 ? parts[0] : .and(parts)
    }

    func run(_ path: String) async throws -> [[String: Any]] {
        var docs: [RagDocument] = []
        var results: [[String: Any]] = []
        var clients: [String: RagClient] = [:]
        func client(_ target: String) -> RagClient {
            if let c = clients[target] { return c }
            let c = RagClient(host: "127.0.0.1", port: ports[target]!, apiKey: apiKey, tls: target == "main" ? tls : nil)
            clients[target] = c
            return c
        }
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: true) where !line.hasPrefix("#") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if f[0] == "doc" {
                var meta: Metadata = [:]
                if f[2] != "-" {
                    for kv in f[2].split(separator: ";") {
                        let p = kv.split(separator: "=", maxSplits: 1)
                        meta[String(p[0])] = Self.typed(p[1])
                    }
                }
                docs.append(RagDocument(id: f[1], text: f[3], metadata: meta))
                continue
            }
            var out: [String: Any] = ["step": f[1]]
            do {
                switch f[0] {
                case "index":
                    let r = try await client("main").index(docs, collection: collection, timeout: hangGuard)
                    out["documents"] = Int(r.documents)
                    out["chunks"] = Int(r.chunks)
                case "query", "stream":
                    let c = client(f[2])
                    let coll = f[3] == "-" ? collection : f[3]
                    let timeout = Duration.milliseconds(Int(f[4])!)
                    let mode = f[5] == "-" ? nil : SearchMode(rawValue: f[5])
                    let k = f[6] == "-" ? nil : Int(f[6])
                    if f[0] == "query" {
                        let r = try await c.query(f[8], collection: coll, topK: k, filter: Self.filter(f[7]), mode: mode, timeout: timeout)
                        out["ids"] = r.sources.map(\.chunkID)
                        out["scores"] = r.sources.map(\.score)
                        out["answer"] = r.answer
                    } else {
                        var ids: [String] = [], tokens: [String] = [], done = false
                        for try await e in try await c.stream(f[8], collection: coll, topK: k, filter: Self.filter(f[7]), mode: mode, timeout: timeout) {
                            switch e.event {
                            case .sources(let s): ids = s.sources.map(\.chunkID)
                            case .token(let t): tokens.append(t)
                            case .done: done = true
                            case nil: break
                            }
                        }
                        out["ids"] = ids
                        out["answer"] = tokens.joined()
                        out["tokens"] = tokens.count > 1
                        out["done"] = done
                    }
                case "stats":
                    let r = try await client("main").stats(collection: collection, timeout: hangGuard)
                    out["documents"] = Int(r.collections[0].documents)
                    out["chunks"] = Int(r.collections[0].chunks)
                case "delete":
                    let r = try await client("main").delete(f[2].split(separator: ",").map(String.init), collection: collection, timeout: hangGuard)
                    out["deleted"] = Int(r.deleted)
                    out["not_found"] = r.notFound
                default: continue
                }
                out["status"] = "OK"
            } catch {
                out["status"] = RagError(from: error).code.description
            }
            results.append(out)
        }
        for c in clients.values { await c.close() }
        return results
    }
}

@Suite(.serialized) struct ConformanceTests {
    func parseLines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    /// Compares two runs step by step: same status codes, ids, answers; scores within 1e-9.
    func compare(_ a: [[String: Any]], _ b: [[String: Any]], _ label: String) {
        #expect(a.count == b.count, "\(label): \(a.count) vs \(b.count) steps")
        for (x, y) in zip(a, b) {
            let step = x["step"] as? String ?? "?"
            #expect(x["step"] as? String == y["step"] as? String, "\(label)")
            #expect(x["status"] as? String == y["status"] as? String, "\(label) \(step): \(x["status"] ?? "-") vs \(y["status"] ?? "-")")
            for key in ["ids", "not_found"] {
                #expect((x[key] as? [String]) == (y[key] as? [String]), "\(label) \(step) \(key)")
            }
            for key in ["answer"] { #expect(x[key] as? String == y[key] as? String, "\(label) \(step) answer") }
            for key in ["documents", "chunks", "deleted"] {
                #expect((x[key] as? NSNumber)?.intValue == (y[key] as? NSNumber)?.intValue, "\(label) \(step) \(key)")
            }
            for key in ["tokens", "done"] { #expect((x[key] as? NSNumber)?.boolValue == (y[key] as? NSNumber)?.boolValue, "\(label) \(step) \(key)") }
            let sx = (x["scores"] as? [Any])?.map { ($0 as! NSNumber).doubleValue } ?? []
            let sy = (y["scores"] as? [Any])?.map { ($0 as! NSNumber).doubleValue } ?? []
            #expect(sx.count == sy.count && zip(sx, sy).allSatisfy { abs($0 - $1) < 1e-9 }, "\(label) \(step) scores")
        }
    }

    @Test func swiftCAndPythonClientsAgree() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await RagdProcess.launch(dataDirectory: dir)
        try await agree(server, tls: nil, apiKey: nil)
    }

    /// The same scenarios over TLS with an API key: every client speaks both.
    @Test func swiftCAndPythonClientsAgreeOverTLSWithAKey() async throws {
        let certs = try await TestCertificates.prepare()
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let created = try await run([RagdProcess.binary, "keys", "create", "--data-dir", dir, "--role", "write", "--name", "conformance"])
        let key = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--tls-cert", certs.certificate("node"), "--tls-key", certs.key("node")])
        try await agree(server, tls: certs.client(), apiKey: key)
        // The scenarios ran under the key: without it, the same server refuses.
        let anonymous = try await run([Repo.path("Clients/c/ragd-c-query"), "127.0.0.1", "\(server.port)", "conf-c", "sqlite"], environment: ["RAGD_TLS_CA": certs.ca])
        #expect(anonymous.status != 0 && anonymous.errors.contains("UNAUTHENTICATED"), "\(anonymous.errors)")
        let keyed = try await run([Repo.path("Clients/c/ragd-c-query"), "127.0.0.1", "\(server.port)", "conf-c", "sqlite"],
                                  environment: ["RAGD_TLS_CA": certs.ca, "RAGD_API_KEY": key])
        #expect(keyed.status == 0 && keyed.output.contains("#0  score"), "\(keyed.output) \(keyed.errors)")
    }

    func agree(_ server: RagdProcess, tls: ClientTLS?, apiKey: String?) async throws {
        let silent = try FakeServer(.silent)
        let hangup = try FakeServer(.hangUp)
        defer { silent.stop(); hangup.stop() }
        let scenarios = Repo.path("Tests/Conformance/scenarios.tsv")
        let ports = ["main": server.port, "silent": silent.port, "hangup": hangup.port]

        let swift = try await SwiftConformanceRunner(ports: ports, collection: "conf-swift", tls: tls, apiKey: apiKey).run(scenarios)
        // Sanity of the reference run itself, so agreement cannot hide a shared mistake.
        let byStep = Dictionary(uniqueKeysWithValues: swift.map { ($0["step"] as! String, $0) })
        #expect(byStep["query-hybrid"]?["status"] as? String == "OK")
        #expect((byStep["query-hybrid"]?["ids"] as? [String])?.first == "sqlite#0")
        #expect((byStep["query-keyword-filter"]?["ids"] as? [String])?.allSatisfy { !$0.hasPrefix("pain") && !$0.hasPrefix("tcp") } == true)
        #expect((byStep["query-filter-in-not"]?["ids"] as? [String])?.sorted() == ["nginx#0", "pain#0"])
        #expect((byStep["query-filter-exists"]?["ids"] as? [String]) == ["cron#0"])
        #expect(byStep["delete-two"]?["not_found"] as? [String] == ["does-not-exist"])
        #expect(byStep["unknown-collection"]?["status"] as? String == "NOT_FOUND")
        #expect(byStep["empty-query"]?["status"] as? String == "INVALID_ARGUMENT")
        #expect(byStep["top-k-too-large"]?["status"] as? String == "INVALID_ARGUMENT")
        #expect(byStep["bad-filter"]?["status"] as? String == "INVALID_ARGUMENT")
        #expect(byStep["deadline-expires"]?["status"] as? String == "DEADLINE_EXCEEDED")
        #expect(byStep["server-goes-away"]?["status"] as? String == "UNAVAILABLE")
        #expect(byStep["stream-server-goes-away"]?["status"] as? String == "UNAVAILABLE")
        #expect(byStep["stream-hybrid"]?["done"] as? Bool == true)

        let args = ["127.0.0.1", "\(server.port)", "\(silent.port)", "\(hangup.port)"]
        var env: [String: String] = [:]
        env["RAGD_API_KEY"] = apiKey
        env["RAGD_CONFORMANCE_TLS_CA"] = tls?.caFile
        for mode in ["sync", "async"] {
            let py = try await run(["python3", Repo.path("Tests/Conformance/run_python.py"), scenarios] + args + ["conf-py-\(mode)", mode], environment: env)
            #expect(py.status == 0, "python: \(py.errors)")
            compare(swift, try parseLines(py.output), "python \(mode)")
        }

        let make = try await CClientBuild.shared.make()
        #expect(make.status == 0, "make: \(make.errors)")
        let c = try await run([Repo.path("Clients/c/ragd-c-conformance"), scenarios] + args + ["conf-c"], environment: env)
        #expect(c.status == 0, "c: \(c.errors)")
        compare(swift, try parseLines(c.output), "c")
    }
}

@Suite struct ClientJobTests {
    /// The Python clients (sync and asyncio) and the C client (under valgrind when
    /// installed) submit jobs in parts, wait for them and read the results.
    @Test func pythonAndCClientsRunJobs() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await RagdProcess.launch(dataDirectory: dir)
        let py = try await run(["python3", Repo.path("Tests/Conformance/jobs_python.py"), "127.0.0.1", "\(server.port)"])
        #expect(py.status == 0 && py.output.contains("ok"), "\(py.output) \(py.errors)")
        let make = try await CClientBuild.shared.make()
        #expect(make.status == 0, "make: \(make.errors)")
        let jobs = [Repo.path("Clients/c/ragd-c-jobs"), "127.0.0.1", "\(server.port)"]
        let valgrind = FileManager.default.isExecutableFile(atPath: "/usr/bin/valgrind")
        let c = try await run(valgrind ? ["valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99"] + jobs : jobs)
        #expect(c.status == 0 && c.output.contains("ok"), "c: \(c.output) \(c.errors)")
        #expect(try await server.client().stats(collection: "cjobs").collections.first?.documents == 600)
    }
}
