import NIOCore
import NIOSSL
import RagCore

/// A listener's TLS: its certificate and key (PEM files), and for mutual TLS
/// the CA whose certificates clients must present.
public struct ServerTLS: Sendable, Hashable {
    public var certificateFile: String
    public var keyFile: String
    /// Set: every client must present a certificate signed by this CA.
    public var clientCAFile: String?

    public init(certificateFile: String, keyFile: String, clientCAFile: String? = nil) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
    }

    public var isMutual: Bool { clientCAFile != nil }

    /// Loads the files once, at start: a missing or bad file stops ragd with a
    /// message instead of failing every handshake later.
    public func makeContext() throws(RagError) -> NIOSSLContext {
        do {
            var c = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem)))
            c.minimumTLSVersion = .tlsv12
            if let clientCAFile {
                c.trustRoots = .file(clientCAFile)
                // The chain must lead to the CA; a client has no hostname to check.
                c.certificateVerification = .noHostnameVerification
            }
            return try NIOSSLContext(configuration: c)
        } catch {
            throw RagError(.invalidArgument, "cannot load TLS files (\(certificateFile), \(keyFile)\(clientCAFile.map { ", " + $0 } ?? "")): \(error)")
        }
    }
}

/// A listener: where it binds, whether it speaks TLS, and what it serves.
struct Listener: Sendable {
    var name: String
    var host: String
    var port: Int
    var tls: NIOSSLContext?
    var dispatcher: Dispatcher
}

/// A bound listener's address, as `RagServer`'s `onListening` reports it.
public enum ListenerAddress: Sendable {
    case `public`(SocketAddress)
    case `internal`(SocketAddress)
}
