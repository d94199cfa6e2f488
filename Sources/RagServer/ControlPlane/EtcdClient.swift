import Foundation
import RagCore
import Synchronization

/// etcd's v3 API through its JSON gateway (HTTP POST to /v3/…), which every
/// etcd ≥ 3.4 serves on its client port. JSON over HTTP rather than gRPC: the
/// calls Ragd makes are few and small, and the HTTP client is already in the
/// process (model providers); a gRPC stack would add minutes of build time
/// for no measurable gain at this call rate.
///
/// Each call tries the endpoints in turn (the first that answers wins); an
/// unreachable etcd is UNAVAILABLE, a refused request FAILED_PRECONDITION.
public final class EtcdClient: Sendable {
    public let endpoints: [String]
    let timeout: Duration
    /// When the last call failed (nil after a success), and why.
    private let failure = Mutex<(at: ContinuousClock.Instant, reason: String)?>(nil)

    /// Why etcd is unreachable, if the last call failed.
    public var unreachable: String? { failure.withLock { $0?.reason } }

    /// Whether a call failed less than `window` ago: callers on a hot path
    /// (a cached query's generation) skip etcd then instead of waiting on it.
    public func failedRecently(within window: Duration = .seconds(1)) -> Bool {
        failure.withLock { f in f.map { ContinuousClock.now - $0.at < window } ?? false }
    }

    /// A cheap read, to tell Health whether etcd answers now.
    public func probe() async -> String? {
        _ = try? await get(PlacementStore.key)
        return unreachable
    }

    public init(endpoints: [String], timeout: Duration = .seconds(3)) {
        self.endpoints = endpoints
        self.timeout = timeout
    }

    /// One stored key.
    public struct KeyValue: Sendable, Hashable {
        public var key: String
        public var value: Data
        public var createRevision: Int64
        public var modRevision: Int64
        public var version: Int64
    }

    // MARK: calls

    /// The value at `key`, or nil.
    public func get(_ key: String) async throws(RagError) -> KeyValue? {
        try await range(["key": Self.b64(key)]).kvs.first
    }

    /// Every key under `prefix`, in key order, and the store's revision.
    public func list(prefix: String) async throws(RagError) -> (kvs: [KeyValue], revision: Int64) {
        try await range(["key": Self.b64(prefix), "range_end": Self.b64(Self.prefixEnd(prefix))])
    }

    /// Stores `value`; returns the new revision.
    @discardableResult
    public func put(_ key: String, _ value: Data) async throws(RagError) -> Int64 {
        let r = try await call("/v3/kv/put", ["key": Self.b64(key), "value": value.base64EncodedString()])
        return Self.int((r["header"] as? [String: Any])?["revision"])
    }

    /// Stores `value` at `key` only if no value is there; returns what is there
    /// afterwards (ours, or the one that was first) and whether it is ours.
    public func create(_ key: String, _ value: Data) async throws(RagError) -> (KeyValue, created: Bool) {
        let k = Self.b64(key)
        let r = try await call("/v3/kv/txn", [
            "compare": [["key": k, "result": "EQUAL", "target": "CREATE", "create_revision": "0"]],
            "success": [["request_put": ["key": k, "value": value.base64EncodedString()]], ["request_range": ["key": k]]],
            "failure": [["request_range": ["key": k]]],
        ])
        let created = (r["succeeded"] as? Bool) ?? false
        let responses = (r["responses"] as? [[String: Any]]) ?? []
        guard let range = responses.compactMap({ $0["response_range"] as? [String: Any] }).first,
              let kv = Self.kvs(range).first else {
            throw RagError(.unavailable, "etcd answered a transaction without the key it just compared")
        }
        return (kv, created)
    }

    /// One condition of a transaction.
    public enum Condition: Sendable {
        /// The key's last modification is at `revision` (0: the key does not exist).
        case modRevision(String, Int64)
        /// The key holds exactly `value`.
        case value(String, Data)
    }

    /// One operation of a transaction.
    public enum Operation: Sendable {
        case put(String, Data)
        case putLeased(String, Data, lease: Int64)
        case delete(String)
    }

    /// Applies `operations` atomically if every condition holds; returns whether it did.
    public func transaction(_ conditions: [Condition], _ operations: [Operation]) async throws(RagError) -> Bool {
        let compare: [[String: Any]] = conditions.map { c in
            switch c {
            case .modRevision(let k, 0): return ["key": Self.b64(k), "result": "EQUAL", "target": "CREATE", "create_revision": "0"]
            case .modRevision(let k, let r): return ["key": Self.b64(k), "result": "EQUAL", "target": "MOD", "mod_revision": String(r)]
            case .value(let k, let v): return ["key": Self.b64(k), "result": "EQUAL", "target": "VALUE", "value": v.base64EncodedString()]
            }
        }
        let success: [[String: Any]] = operations.map { o in
            switch o {
            case .put(let k, let v): return ["request_put": ["key": Self.b64(k), "value": v.base64EncodedString()]]
            case .putLeased(let k, let v, let lease): return ["request_put": ["key": Self.b64(k), "value": v.base64EncodedString(), "lease": String(lease)]]
            case .delete(let k): return ["request_delete_range": ["key": Self.b64(k)]]
            }
        }
        let r = try await call("/v3/kv/txn", ["compare": compare, "success": success])
        return (r["succeeded"] as? Bool) ?? false
    }

    // MARK: leases

    /// A lease that expires `ttl` seconds after its last keep-alive; returns its id.
    public func grantLease(ttl: Int) async throws(RagError) -> Int64 {
        let r = try await call("/v3/lease/grant", ["TTL": ttl])
        let id = Self.int(r["ID"])
        guard id != 0 else { throw RagError(.unavailable, "etcd granted no lease") }
        return id
    }

    /// Renews a lease; returns its remaining TTL in seconds, 0 when it has expired.
    public func keepAlive(_ lease: Int64) async throws(RagError) -> Int64 {
        let r = try await call("/v3/lease/keepalive", ["ID": String(lease)])
        return Self.int((r["result"] as? [String: Any])?["TTL"])
    }

    /// Ends a lease at once (its keys go with it).
    public func revokeLease(_ lease: Int64) async throws(RagError) {
        _ = try await call("/v3/lease/revoke", ["ID": String(lease)])
    }

    /// Stores `value` bound to `lease`: it disappears when the lease expires.
    @discardableResult
    public func put(_ key: String, _ value: Data, lease: Int64) async throws(RagError) -> Int64 {
        let r = try await call("/v3/kv/put", ["key": Self.b64(key), "value": value.base64EncodedString(), "lease": String(lease)])
        return Self.int((r["header"] as? [String: Any])?["revision"])
    }

    // MARK: transport

    func range(_ body: [String: Any]) async throws(RagError) -> (kvs: [KeyValue], revision: Int64) {
        let r = try await call("/v3/kv/range", body)
        return (Self.kvs(r), Self.int((r["header"] as? [String: Any])?["revision"]))
    }

    func call(_ path: String, _ body: [String: Any]) async throws(RagError) -> [String: Any] {
        do {
            let r = try await attempt(path, body)
            failure.withLock { $0 = nil }
            return r
        } catch {
            if error.code == .unavailable { failure.withLock { $0 = (.now, error.message) } }
            throw error
        }
    }

    func attempt(_ path: String, _ body: [String: Any]) async throws(RagError) -> [String: Any] {
        let payload: Data
        do { payload = try JSONSerialization.data(withJSONObject: body) } catch { throw RagError(.internal, "etcd request: \(error)") }
        var failures: [String] = []
        for endpoint in endpoints {
            do {
                let r = try await OutboundHTTP.post("http://\(endpoint)\(path)", body: payload, timeout: timeout)
                let object = (try? JSONSerialization.jsonObject(with: r.body)) as? [String: Any] ?? [:]
                guard (200...299).contains(r.status) else {
                    let message = (object["message"] as? String) ?? (object["error"] as? String) ?? "HTTP \(r.status)"
                    // 5xx: this member cannot serve (no leader, stopping); another may.
                    if r.status >= 500 { failures.append("\(endpoint): \(message)"); continue }
                    throw RagError(.failedPrecondition, "etcd refused \(path): \(message)")
                }
                return object
            } catch let e as RagError where e.code != .deadlineExceeded {
                throw e
            } catch is CancellationError {
                throw RagError(.cancelled, "etcd call cancelled")
            } catch {
                failures.append("\(endpoint): \(RagError(from: error).message)")
            }
        }
        throw RagError(.unavailable, "etcd is unreachable (\(failures.joined(separator: "; ")))")
    }

    // MARK: encoding

    static func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

    /// The smallest key greater than every key starting with `prefix`.
    static func prefixEnd(_ prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xFF { bytes[bytes.count - 1] = last + 1; return String(decoding: bytes, as: UTF8.self) }
            bytes.removeLast()
        }
        return "\0"
    }

    /// int64 fields arrive as JSON strings.
    static func int(_ v: Any?) -> Int64 {
        if let s = v as? String { return Int64(s) ?? 0 }
        if let n = v as? NSNumber { return n.int64Value }
        return 0
    }

    static func kvs(_ r: [String: Any]) -> [KeyValue] {
        ((r["kvs"] as? [[String: Any]]) ?? []).compactMap { kv in
            guard let k = (kv["key"] as? String).flatMap({ Data(base64Encoded: $0) }) else { return nil }
            return KeyValue(key: String(decoding: k, as: UTF8.self), value: (kv["value"] as? String).flatMap { Data(base64Encoded: $0) } ?? Data(),
                            createRevision: int(kv["create_revision"]), modRevision: int(kv["mod_revision"]), version: int(kv["version"]))
        }
    }
}
