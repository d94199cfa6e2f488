import RagCore

/// Who is calling: an API key's record and its rate limits, or anyone, on a
/// server that has no keys yet (a loopback development server).
public struct Principal: Sendable {
    /// The key's id; empty for anonymous callers.
    public let keyID: String
    public let role: KeyRole
    /// Collections it may touch; empty: all.
    public let collections: [String]
    let limits: KeyLimits?

    /// Full access: a server without keys, or a job the server runs for itself.
    public static let anonymous = Principal(keyID: "", role: .admin, collections: [], limits: nil)

    init(keyID: String, role: KeyRole, collections: [String], limits: KeyLimits?) {
        self.keyID = keyID
        self.role = role
        self.collections = collections
        self.limits = limits
    }

    public var isAnonymous: Bool { keyID.isEmpty }

    public func require(_ role: KeyRole, for what: String) throws(RagError) {
        guard self.role >= role else {
            throw .permissionDenied("key \(keyID) has role \(self.role.rawValue); \(what) needs \(role.rawValue)")
        }
    }

    public func allows(collection: String) -> Bool {
        collections.isEmpty || collections.contains(collection)
    }

    public func require(collection: String) throws(RagError) {
        guard allows(collection: collection) else {
            throw .permissionDenied("key \(keyID) may not use collection \(collection.truncatedUTF8(maxBytes: 128).debugDescription)")
        }
    }

    /// A key that is limited to some collections cannot act on "every collection".
    public func requireAllCollections(for what: String) throws(RagError) {
        guard collections.isEmpty else {
            throw .permissionDenied("key \(keyID) is limited to some collections; \(what) needs a collection it may use")
        }
    }

    /// Whether a job belongs to this caller (admins see every job).
    public func owns(jobOwner: String) -> Bool {
        role == .admin || jobOwner == keyID
    }

    /// Spends from the key's query bucket (RESOURCE_EXHAUSTED with a retry-after when empty).
    public func spendQueries(_ n: Int = 1) throws(RagError) {
        if let wait = limits?.queries?.take(Double(n)) { throw Self.limited("queries", wait) }
    }

    /// Spends from the key's document bucket.
    public func spendDocuments(_ n: Int) throws(RagError) {
        guard n > 0 else { return }
        if let wait = limits?.documents?.take(Double(n)) { throw Self.limited("documents", wait) }
    }

    static func limited(_ what: String, _ wait: Duration) -> RagError {
        RagError(.resourceExhausted, "this key's \(what) rate limit is used up; retry after \(wait.inMilliseconds) ms", retryAfter: wait)
    }
}

/// The rate limiters of one key, shared by all its calls.
final class KeyLimits: Sendable {
    let queries: TokenBucket?
    let documents: TokenBucket?

    init(_ record: APIKeyRecord) {
        queries = record.queriesPerSecond > 0 ? TokenBucket(rate: record.queriesPerSecond) : nil
        documents = record.documentsPerSecond > 0 ? TokenBucket(rate: record.documentsPerSecond) : nil
    }
}
