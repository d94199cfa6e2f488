import Crypto
import Foundation
import RagCore

/// What a key may do. Each role includes the one before it.
public enum KeyRole: String, Sendable, CaseIterable, Comparable, Codable {
    /// Query, Stream, Stats, Health, ListCollections, Feedback, query jobs and its own jobs.
    case read
    /// + Index, IndexStream, Delete, index jobs.
    case write
    /// + ClearCache, experiments, every job, key management.
    case admin

    public static func < (a: KeyRole, b: KeyRole) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    public init(parsing s: String) throws(RagError) {
        guard let r = KeyRole(rawValue: s.lowercased()) else {
            throw .invalidArgument("unknown role \(s.truncatedUTF8(maxBytes: 32).debugDescription); roles: read, write, admin")
        }
        self = r
    }
}

/// A stored API key: everything but the secret, of which only a SHA-256 is kept.
public struct APIKeyRecord: Sendable, Hashable, Codable {
    /// The public part of the token, safe to log and show.
    public var id: String
    public var name: String
    public var role: KeyRole
    /// Collections the key may touch; empty: all.
    public var collections: [String]
    public var createdAt: Double
    public var revoked: Bool
    /// Token-bucket rates; 0: unlimited.
    public var queriesPerSecond: Double
    public var documentsPerSecond: Double
    /// SHA-256 of the secret.
    var secretHash: Data

    /// A new key and its token, checked: names and scopes are bounded like every
    /// other string a client sends.
    static func make(name: String, role: KeyRole, collections: [String], queriesPerSecond: Double,
                     documentsPerSecond: Double) throws(RagError) -> (APIKeyRecord, APIKeyToken) {
        guard name.utf8.count <= 256 else { throw .invalidArgument("a key's name is at most 256 bytes") }
        guard collections.count <= 1000 else { throw .invalidArgument("a key names at most 1000 collections") }
        for c in collections { try CollectionRegistry.validateName(c) }
        for r in [queriesPerSecond, documentsPerSecond] where !(r.isFinite && r >= 0) {
            throw .invalidArgument("rate limits are finite and not negative (0: unlimited)")
        }
        let token = APIKeyToken.generate()
        let record = APIKeyRecord(id: token.id, name: name, role: role, collections: Array(Set(collections)).sorted(),
                                  createdAt: Date().timeIntervalSince1970, revoked: false, queriesPerSecond: queriesPerSecond,
                                  documentsPerSecond: documentsPerSecond, secretHash: token.secretHash)
        return (record, token)
    }
}

/// A token as a client sends it: `ragd_<id>_<secret>`, the secret 256 random
/// bits in base64url. The id finds the record; the secret's hash proves it.
public struct APIKeyToken: Sendable {
    public let id: String
    let secret: String

    public var text: String { "ragd_\(id)_\(secret)" }

    /// A fresh token from the system's CSPRNG (getrandom on Linux).
    public static func generate() -> APIKeyToken {
        var rng = SystemRandomNumberGenerator()
        let id = "k" + String(format: "%08x", UInt32.random(in: 0...UInt32.max, using: &rng))
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let secret = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return APIKeyToken(id: id, secret: secret)
    }

    /// Nil for anything that is not shaped like a token (it is then simply unknown).
    public init?(parsing text: String) {
        guard text.utf8.count <= 128, text.hasPrefix("ragd_") else { return nil }
        let parts = text.dropFirst(5).split(separator: "_", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        id = String(parts[0])
        secret = String(parts[1])
    }

    init(id: String, secret: String) {
        self.id = id
        self.secret = secret
    }

    var secretHash: Data { Data(SHA256.hash(data: Data(secret.utf8))) }

    /// Compares hashes in time independent of where they differ.
    func matches(_ record: APIKeyRecord) -> Bool {
        let h = secretHash
        guard h.count == record.secretHash.count else { return false }
        var diff: UInt8 = 0
        for (a, b) in zip(h, record.secretHash) { diff |= a ^ b }
        return diff == 0
    }
}
