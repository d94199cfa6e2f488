import ArgumentParser
import Foundation
import RagClient
import RagServer

/// Flags for TLS, API keys and the internal (shard) listener.
struct SecurityOptions: ParsableArguments {
    @Flag(help: "Start without the protections a non-loopback address needs (TLS, API keys, mutual TLS between nodes). For trusted networks and tests only.")
    var insecure = false
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain of the public listener; with --tls-key turns TLS on.") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key of --tls-cert.") var tlsKey: String?
    @Option(name: .customLong("tls-client-ca"), help: "PEM CA: clients of the public listener must present a certificate it signed (mutual TLS).") var tlsClientCA: String?
    @Option(name: .customLong("internal-port"), help: "Shard nodes: port of the internal listener, the only one serving shard RPCs (0: any free port).") var internalPort: Int?
    @Option(name: .customLong("internal-host"), help: "Shard nodes: address of the internal listener (default: --host).") var internalHost: String?
    @Option(name: .customLong("cluster-ca"), help: "PEM CA of the cluster: signs every node's certificate; peers must present one.") var clusterCA: String?
    @Option(name: .customLong("cluster-cert"), help: "PEM certificate of this node, signed by --cluster-ca (served by a shard's internal listener, presented by a coordinator).") var clusterCert: String?
    @Option(name: .customLong("cluster-key"), help: "PEM private key of --cluster-cert.") var clusterKey: String?

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// Applies the flags and refuses unsafe combinations unless --insecure.
    func apply(to c: inout RagServerConfiguration, setting: (String?, String, String) -> String?) async throws {
        let insecure = self.insecure || ["1", "true", "yes"].contains(setting(nil, "RAGD_INSECURE", "insecure")?.lowercased() ?? "")
        let cert = setting(tlsCert, "RAGD_TLS_CERT", "tls-cert"), key = setting(tlsKey, "RAGD_TLS_KEY", "tls-key")
        let clientCA = setting(tlsClientCA, "RAGD_TLS_CLIENT_CA", "tls-client-ca")
        switch (cert, key) {
        case let (cert?, key?): c.tls = ServerTLS(certificateFile: cert, keyFile: key, clientCAFile: clientCA)
        case (nil, nil): if clientCA != nil { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key") }
        default: throw ValidationError("TLS needs both --tls-cert and --tls-key")
        }
        let clusterCA = setting(self.clusterCA, "RAGD_CLUSTER_CA", "cluster-ca")
        let clusterCert = setting(self.clusterCert, "RAGD_CLUSTER_CERT", "cluster-cert")
        let clusterKey = setting(self.clusterKey, "RAGD_CLUSTER_KEY", "cluster-key")
        let clusterFiles = [clusterCA, clusterCert, clusterKey].compactMap { $0 }.count
        guard clusterFiles == 0 || clusterFiles == 3 else {
            throw ValidationError("mutual TLS between nodes needs all of --cluster-ca, --cluster-cert and --cluster-key")
        }
        let internalPort = try setting(self.internalPort.map(String.init), "RAGD_INTERNAL_PORT", "internal-port").map { s -> Int in
            guard let p = Int(s), (0...65535).contains(p) else { throw ValidationError("internal-port must be a port number") }
            return p
        }
        switch c.role {
        case .shard:
            guard let internalPort else {
                throw ValidationError("--role shard serves shard RPCs only on its internal listener: give --internal-port and --cluster-ca/--cluster-cert/--cluster-key")
            }
            guard clusterFiles == 3 || insecure else {
                throw ValidationError("the internal listener requires mutual TLS: give --cluster-ca, --cluster-cert and --cluster-key (or --insecure on a trusted network)")
            }
            let tls = clusterFiles == 3 ? ServerTLS(certificateFile: clusterCert!, keyFile: clusterKey!, clientCAFile: clusterCA!) : nil
            c.internalListener = .init(host: setting(internalHost, "RAGD_INTERNAL_HOST", "internal-host") ?? c.host, port: internalPort, tls: tls)
        case .coordinator:
            guard clusterFiles == 3 || insecure else {
                throw ValidationError("a coordinator reaches its shards over mutual TLS: give --cluster-ca, --cluster-cert and --cluster-key (or --insecure on a trusted network)")
            }
            if clusterFiles == 3 { c.clusterTLS = ClientTLS(caFile: clusterCA, certificateFile: clusterCert, keyFile: clusterKey) }
            if internalPort != nil { throw ValidationError("--internal-port is for --role shard") }
        case .all:
            if internalPort != nil { throw ValidationError("--internal-port is for --role shard") }
        }
        guard !Self.isLoopback(c.host) else { return }
        // Beyond loopback: every call needs a key, and the wire is encrypted.
        if insecure { return }
        guard c.tls != nil else {
            throw ValidationError("""
                refusing to listen on \(c.host) without TLS: keys and data would cross the network in clear. \
                Give --tls-cert and --tls-key, listen on 127.0.0.1, or pass --insecure to accept the risk.
                """)
        }
        c.requireKeys = true
        let store: any APIKeyStore = c.etcdEndpoints.isEmpty ? try KeyStore(path: c.dataDirectory + "/keys.sqlite")
            : EtcdKeyStore(etcd: EtcdClient(endpoints: c.etcdEndpoints))
        let keys = try await store.all().filter { !$0.revoked }
        guard !keys.isEmpty else {
            throw ValidationError("""
                refusing to listen on \(c.host) without API keys: nobody could call the server. \
                Create one first: ragd keys create \(c.etcdEndpoints.isEmpty ? "--data-dir \(c.dataDirectory)" : "--etcd \(c.etcdEndpoints.joined(separator: ","))") --name admin --role admin
                """)
        }
    }
}
