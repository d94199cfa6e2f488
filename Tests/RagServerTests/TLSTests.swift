import Foundation
import RagClient
import RagCore
import RagTesting
import RagWire
import Testing

/// #13: TLS and mutual TLS against real ragd processes, keys made offline, and
/// the internal listener that alone serves shard RPCs.
@Suite struct TLSTests {
    func message(_ body: () async throws -> Void) async -> String {
        do { try await body(); return "" } catch { return RagError(from: error).message }
    }

    /// `ragd keys create` on a stopped server's directory, then TLS with that key:
    /// RagClient and ragctl get in; plaintext, another CA and no key do not.
    @Test func tlsWithABootstrapKey() async throws {
        let certs = try await TestCertificates.prepare()
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let created = try await run([RagdProcess.binary, "keys", "create", "--data-dir", dir, "--name", "boot", "--role", "admin"])
        #expect(created.status == 0, "\(created.errors)")
        let token = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let listed = try await run([RagdProcess.binary, "keys", "list", "--data-dir", dir])
        #expect(listed.output.contains("admin") && !listed.output.contains(String(token.dropFirst(15))))  // "ragd_" + 9-char id + "_"
        let server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--tls-cert", certs.certificate("node"), "--tls-key", certs.key("node")])
        defer { server.kill9() }
        let good = server.client(apiKey: token, tls: certs.client())
        _ = try await good.index(Fixtures.documents, collection: "kb")
        #expect(try await good.query("raft leader election", collection: "kb", topK: 1).sources.first?.documentID == "raft")
        let plain = server.client(apiKey: token)
        let said = await message { _ = try await plain.health() }
        #expect(said.contains("TLS"), "\(said)")
        let distrusting = server.client(apiKey: token, tls: ClientTLS(caFile: certs.rogueDirectory + "/ca.pem"))
        #expect(await code { _ = try await distrusting.health() } == .unavailable)
        #expect(await code { _ = try await server.client(tls: certs.client()).health() } == .unauthenticated)
        let ctl = try await run(["env", "RAGD_API_KEY=\(token)", CLIIndexTests.ragctl, "health", "--server", "127.0.0.1:\(server.port)", "--tls-ca", certs.ca])
        #expect(ctl.status == 0 && ctl.output.contains("SERVING"), "\(ctl.errors)")
        let viaName = try await run(["env", "RAGD_API_KEY=\(token)", CLIIndexTests.ragctl, "health", "--server", "localhost:\(server.port)", "--tls-ca", certs.ca])
        #expect(viaName.status == 0, "\(viaName.errors)")
        let noKey = try await run([CLIIndexTests.ragctl, "health", "--server", "127.0.0.1:\(server.port)", "--tls-ca", certs.ca])
        #expect(noKey.status != 0 && noKey.errors.contains("UNAUTHENTICATED"))
        for c in [good, plain, distrusting] { await c.close() }
    }

    /// With --tls-client-ca only clients with a certificate from that CA connect.
    @Test func mutualTLSOnThePublicListener() async throws {
        let certs = try await TestCertificates.prepare()
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: [
            "--tls-cert", certs.certificate("node"), "--tls-key", certs.key("node"), "--tls-client-ca", certs.ca, "--max-connections", "2"])
        defer { server.kill9() }
        #expect(await code { _ = try await server.client(tls: certs.client()).health() } == .unavailable)
        #expect(await code { _ = try await server.client(tls: certs.rogueClient).health() } == .unavailable)
        let a = server.client(tls: certs.client("client"))
        let b = server.client(tls: certs.client("client"))
        _ = try await a.health()
        _ = try await b.health()
        // Over the connection limit, a TLS client still hears why.
        let c = server.client(tls: certs.client("client"))
        let refused = await message { _ = try await c.health() }
        #expect(refused.contains("connections open"), "\(refused)")
        for x in [a, b, c] { await x.close() }
    }

    /// Shard RPCs: PERMISSION_DENIED on the public port; on the internal one only
    /// with a certificate from the cluster's CA; a shard never starts without it.
    @Test func shardRPCsOnlyOnTheInternalListener() async throws {
        let certs = try await TestCertificates.prepare()
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let shard = try await RagdProcess.launch(dataDirectory: dir, extraArguments: LocalCluster.shardArguments())
        defer { shard.kill9() }
        let request = Ragd_V1_ShardHashesRequest.with { $0.shard.collection = "kb"; $0.shard.partition = 0 }
        func hashes(_ c: RagClient) async -> RagError.Code {
            await code { _ = try await c.call(.shardHashes, request, as: Ragd_V1_ShardHashesResponse.self, timeout: hangGuard) }
        }
        #expect(await hashes(shard.client()) == .permissionDenied)
        #expect(try await shard.client().health().role == "shard")  // operators still reach Health
        #expect(await hashes(shard.internalClient(tls: nil)) == .unavailable)
        #expect(await hashes(shard.internalClient(tls: certs.client())) == .unavailable)
        #expect(await hashes(shard.internalClient(tls: certs.rogueClient)) == .unavailable)
        #expect(await hashes(shard.internalClient()) == .ok)
        let bare = try await run([RagdProcess.binary, "serve", "--role", "shard", "--port", "0", "--data-dir", dir + "/b", "--metrics-port", "off"])
        #expect(bare.status != 0 && bare.errors.contains("--internal-port"), "\(bare.errors)")
        let noTLS = try await run([RagdProcess.binary, "serve", "--role", "shard", "--port", "0", "--internal-port", "0", "--data-dir", dir + "/c",
                                   "--metrics-port", "off"])
        #expect(noTLS.status != 0 && noTLS.errors.contains("mutual TLS"), "\(noTLS.errors)")
    }

    /// Beyond loopback ragd needs TLS and a key (or --insecure), and says why.
    @Test func anExposedAddressNeedsTLSAndKeys() async throws {
        let certs = try await TestCertificates.prepare()
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let base = [RagdProcess.binary, "serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", dir, "--metrics-port", "off"]
        let bare = try await run(base)
        #expect(bare.status != 0 && bare.errors.contains("refusing to listen on 0.0.0.0") && bare.errors.contains("TLS")
                && bare.errors.contains("--insecure"), "\(bare.errors)")
        let tls = ["--tls-cert", certs.certificate("node"), "--tls-key", certs.key("node")]
        let noKeys = try await run(base + tls)
        #expect(noKeys.status != 0 && noKeys.errors.contains("ragd keys create"), "\(noKeys.errors)")
        let created = try await run([RagdProcess.binary, "keys", "create", "--data-dir", dir, "--role", "read"])
        let token = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: ["--host", "0.0.0.0"] + tls)
        defer { server.kill9() }
        #expect(try await server.client(apiKey: token, tls: certs.client()).health().status == "SERVING")
        #expect(await code { _ = try await server.client(apiKey: token, tls: certs.client()).index([RagDocument(id: "x", text: "y")], collection: "kb") }
                == .permissionDenied)
    }

    /// A client that starts a TLS handshake and stalls is closed after --frame-timeout
    /// (long before the idle timeout), while a well-behaved client is served.
    @Test func aStalledHandshakeIsClosed() async throws {
        let certs = try await TestCertificates.prepare()
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await RagdProcess.launch(dataDirectory: dir, extraArguments: [
            "--tls-cert", certs.certificate("node"), "--tls-key", certs.key("node"), "--frame-timeout", "1", "--idle-timeout", "600"])
        defer { server.kill9() }
        let loris = try RawConnection(port: server.port, timeoutSeconds: 20)
        await loris.write([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])  // a ClientHello's first bytes, then nothing
        let good = server.client(tls: certs.client())
        #expect(try await good.health().status == "SERVING")
        #expect(await loris.closedByPeer())
        await good.close()
    }
}
