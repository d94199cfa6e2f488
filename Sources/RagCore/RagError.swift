/// The one error type of Ragd: a status code and a human-readable message.
///
/// Codes are gRPC's and map 1:1 onto `ragd.v1.StatusCode` on the wire, so a
/// client in any language sees the same code the server chose.
public struct RagError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A gRPC-style status code. Raw values are the wire numbers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int

        public init?(rawValue: Int) {
            guard (0...16).contains(rawValue) else { return nil }
            self.rawValue = rawValue
        }

        private init(_ value: Int) { self.rawValue = value }

        public static let ok = Code(0)
        public static let cancelled = Code(1)
        public static let unknown = Code(2)
        public static let invalidArgument = Code(3)
        public static let deadlineExceeded = Code(4)
        public static let notFound = Code(5)
        public static let alreadyExists = Code(6)
        public static let permissionDenied = Code(7)
        public static let resourceExhausted = Code(8)
        public static let failedPrecondition = Code(9)
        public static let aborted = Code(10)
        public static let outOfRange = Code(11)
        public static let unimplemented = Code(12)
        public static let `internal` = Code(13)
        public static let unavailable = Code(14)
        public static let dataLoss = Code(15)
        public static let unauthenticated = Code(16)

        private static let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
            "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
            "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
            "UNAUTHENTICATED",
        ]

        /// The gRPC name, e.g. `INVALID_ARGUMENT`.
        public var description: String { Self.names[rawValue] }
    }

    public var code: Code
    public var message: String
    /// For RESOURCE_EXHAUSTED from a rate limit: when a retry would be admitted.
    /// Travels in the frame metadata (`retry_after_ms`), not in the message.
    public var retryAfter: Duration?
    /// The message speaks only of what the caller sent (e.g. which entry of an
    /// uploaded archive is damaged), so it reaches the client even for codes
    /// whose messages the server otherwise keeps to its log (DATA_LOSS, INTERNAL).
    public var messageIsForClient = false

    public init(_ code: Code, _ message: String, retryAfter: Duration? = nil, messageIsForClient: Bool = false) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
        self.messageIsForClient = messageIsForClient
    }

    public var description: String { "\(code): \(message)" }

    public static func invalidArgument(_ message: String) -> RagError { RagError(.invalidArgument, message) }
    public static func notFound(_ message: String) -> RagError { RagError(.notFound, message) }
    public static func failedPrecondition(_ message: String) -> RagError { RagError(.failedPrecondition, message) }
    public static func `internal`(_ message: String) -> RagError { RagError(.internal, message) }
    public static func unavailable(_ message: String) -> RagError { RagError(.unavailable, message) }
    public static func unauthenticated(_ message: String) -> RagError { RagError(.unauthenticated, message) }
    public static func permissionDenied(_ message: String) -> RagError { RagError(.permissionDenied, message) }
}

/// Lets lower layers (storage, engine) describe their failures in Ragd terms.
public protocol RagErrorConvertible: Error {
    var ragError: RagError { get }
}

extension RagError {
    /// Maps any error to a `RagError`: cancellation becomes CANCELLED, unknown
    /// errors INTERNAL with their description.
    public init(from error: any Error) {
        switch error {
        case let e as RagError: self = e
        case let e as any RagErrorConvertible: self = e.ragError
        case is CancellationError: self = RagError(.cancelled, "the call was cancelled")
        default: self = RagError(.internal, String(describing: error))
        }
    }
}

extension RagError {
    /// `error` from one batch of documents, reworded to name them and to say how
    /// many documents before them are committed. The code stays, so callers'
    /// retry decisions are unchanged.
    /// Up to eight ids, then how many more: document lists in messages stay short.
    public static func named(_ ids: [String]) -> String {
        ids.prefix(8).joined(separator: ", ") + (ids.count > 8 ? " and \(ids.count - 8) more" : "")
    }

    public static func batchFailed(_ error: any Error, documentIDs ids: [String], committedBefore done: Int,
                                   rerun: String = "re-running the same request skips them") -> RagError {
        let e = RagError(from: error)
        return RagError(e.code, "documents \(named(ids)) failed: \(e.message); the \(done) documents before them are committed (\(rerun))")
    }
}
