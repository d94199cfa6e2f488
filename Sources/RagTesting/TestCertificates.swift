import Foundation
import RagClient

/// A throwaway CA and certificates made by `Scripts/make-certs.sh` (openssl),
/// once per test process: `node` and `client` signed by the CA, and a second,
/// unrelated CA with its own `client`, for "wrong certificate" tests.
public struct TestCertificates: Sendable {
    public let directory: String
    public let rogueDirectory: String

    public var ca: String { directory + "/ca.pem" }
    public func certificate(_ name: String) -> String { "\(directory)/\(name).pem" }
    public func key(_ name: String) -> String { "\(directory)/\(name).key" }

    /// Client options trusting the CA, optionally presenting `name`'s certificate.
    public func client(_ name: String? = nil) -> ClientTLS {
        ClientTLS(caFile: ca, certificateFile: name.map(certificate), keyFile: name.map(key))
    }

    /// A certificate from another CA: valid, but not the cluster's.
    public var rogueClient: ClientTLS {
        ClientTLS(caFile: ca, certificateFile: rogueDirectory + "/client.pem", keyFile: rogueDirectory + "/client.key")
    }

    /// `ragd` flags for a shard's internal listener or a coordinator's client side.
    public var clusterFlags: [String] {
        ["--cluster-ca", ca, "--cluster-cert", certificate("node"), "--cluster-key", key("node")]
    }

    /// `shared`, made on a thread of its own (openssl runs as a child process).
    public static func prepare() async throws -> TestCertificates { try await onThread { shared } }

    public static let shared: TestCertificates = {
        let root = makeTemporaryDirectory("ragd-certs")
        let certs = TestCertificates(directory: root + "/cluster", rogueDirectory: root + "/rogue")
        make(certs.directory, ["node", "client"])
        make(certs.rogueDirectory, ["client"])
        return certs
    }()

    static func make(_ directory: String, _ names: [String]) {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Scripts/make-certs.sh").path
        let r = try? runChild("/bin/bash", [script, directory] + names)
        precondition(r?.status == 0 && FileManager.default.fileExists(atPath: directory + "/ca.pem"),
                     "Scripts/make-certs.sh failed (is openssl installed?): \(r?.errors ?? "")")
    }
}
