import Foundation
import NIOCore
import NIOSSL
import RagCore

/// How a client speaks TLS to ragd: whom it trusts, and (for mutual TLS) the
/// certificate it presents. Paths are PEM files.
public struct ClientTLS: Sendable, Hashable {
    /// CA certificates that signed the server's certificate; nil: the system's trust store.
    public var caFile: String?
    /// A client certificate chain and its key, for servers that require one.
    public var certificateFile: String?
    public var keyFile: String?
    /// The name to verify and send as SNI; nil: the host connected to (an IP
    /// address is then checked against the certificate's IP entries).
    public var serverName: String?

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
    }

    /// Built once per client: loading PEM files is not free.
    public func makeContext() throws(RagError) -> NIOSSLContext {
        do {
            var c = TLSConfiguration.makeClientConfiguration()
            c.minimumTLSVersion = .tlsv12
            if let caFile { c.trustRoots = .file(caFile) }
            switch (certificateFile, keyFile) {
            case let (cert?, key?):
                c.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                c.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            case (nil, nil): break
            default: throw RagError.invalidArgument("a client certificate needs both its certificate and its key file")
            }
            return try NIOSSLContext(configuration: c)
        } catch let e as RagError {
            throw e
        } catch {
            throw RagError(.invalidArgument, "cannot load TLS files: \(error)")
        }
    }

    /// The SNI / verification name for `host`: none for an IP literal (NIOSSL
    /// then verifies the peer's address against the certificate).
    func hostname(for host: String) -> String? {
        if let serverName { return serverName }
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if (try? SocketAddress(ipAddress: bare, port: 0)) != nil { return nil }
        return bare
    }
}
