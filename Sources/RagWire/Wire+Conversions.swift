import RagCore

// Proto <-> RagCore value conversions. Engine types convert in RagServer, so
// that RagEngine never sees protobuf.

extension RagError.Code {
    public init(_ status: Ragd_V1_StatusCode) {
        self = RagError.Code(rawValue: status.rawValue) ?? .unknown
    }

    public var wire: Ragd_V1_StatusCode {
        Ragd_V1_StatusCode(rawValue: rawValue) ?? .unknown
    }
}

extension Ragd_V1_Frame {
    /// Longest method name an ERROR frame echoes back: every real method is far
    /// shorter, and a hostile 8 MB name must not come back (twice) in the answer.
    public static let maxEchoedMethodBytes = 128
    /// Longest status message sent to a client.
    public static let maxStatusMessageBytes = 4096

    /// An ERROR frame for `callID` carrying `error`'s code and message. The method
    /// is echoed only when it is short enough to be a real one, and the message is
    /// bounded, so an error is always a small frame whatever the request held.
    public static func error(callID: UInt64, method: String = "", _ error: RagError) -> Ragd_V1_Frame {
        var f = Ragd_V1_Frame()
        f.callID = callID
        f.method = method.utf8.count <= maxEchoedMethodBytes ? method : ""
        f.kind = .error
        f.status = error.code.wire
        f.statusMessage = error.message.truncatedUTF8(maxBytes: maxStatusMessageBytes)
        if let after = error.retryAfter {
            let c = after.components
            f.metadata.retryAfterMs = UInt64(max(1, c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000))
        }
        return f
    }
}

extension MetadataValue {
    public init(wire v: Ragd_V1_Value) throws(RagError) {
        switch v.kind {
        case .stringValue(let s): self = .string(s)
        case .numberValue(let n):
            guard n.isFinite else { throw .invalidArgument("metadata numbers must be finite") }
            self = .number(n)
        case .boolValue(let b): self = .bool(b)
        case nil: throw .invalidArgument("a metadata value has no string, number or bool set")
        }
    }

    public var wire: Ragd_V1_Value {
        var v = Ragd_V1_Value()
        switch self {
        case .string(let s): v.stringValue = s
        case .number(let n): v.numberValue = n
        case .bool(let b): v.boolValue = b
        }
        return v
    }
}

public func metadata(fromWire m: [String: Ragd_V1_Value]) throws(RagError) -> Metadata {
    var out: Metadata = [:]
    for (k, v) in m { out[k] = try MetadataValue(wire: v) }
    return out
}

public func wireMetadata(_ m: Metadata) -> [String: Ragd_V1_Value] {
    m.mapValues(\.wire)
}

extension MetadataFilter {
    /// Converts and validates a wire filter (malformed: INVALID_ARGUMENT).
    public init(wire f: Ragd_V1_Filter, depth: Int = 0) throws(RagError) {
        guard depth < 32 else { throw .invalidArgument("filter is nested deeper than 32 levels") }
        switch f.node {
        case .allOf(let list): self = .and(try list.filters.map { (x) throws(RagError) in try MetadataFilter(wire: x, depth: depth + 1) })
        case .anyOf(let list): self = .or(try list.filters.map { (x) throws(RagError) in try MetadataFilter(wire: x, depth: depth + 1) })
        case .negation(let inner): self = .not(try MetadataFilter(wire: inner, depth: depth + 1))
        case .compare(let c):
            let op: MetadataFilter.Op
            switch c.op {
            case .eq: op = .eq
            case .ne: op = .ne
            case .in: op = .in
            case .lt: op = .lt
            case .lte: op = .lte
            case .gt: op = .gt
            case .gte: op = .gte
            case .exists: op = .exists
            case .unspecified, .UNRECOGNIZED: throw .invalidArgument("filter: comparison on '\(c.key)' has no valid operator")
            }
            var values: [MetadataValue] = []
            if op == .in {
                values = try c.values.map { (v) throws(RagError) in try MetadataValue(wire: v) }
            } else if op != .exists {
                guard c.hasValue else { throw .invalidArgument("filter: \(op) on '\(c.key)' needs a value") }
                values = [try MetadataValue(wire: c.value)]
            }
            self = .compare(key: c.key, op: op, values: values)
        case nil:
            throw .invalidArgument("filter: a node has none of all_of, any_of, negation, compare")
        }
        if depth == 0 { try validate() }
    }

    public var wire: Ragd_V1_Filter {
        var f = Ragd_V1_Filter()
        switch self {
        case .and(let fs): f.allOf = Ragd_V1_FilterList.with { $0.filters = fs.map(\.wire) }
        case .or(let fs): f.anyOf = Ragd_V1_FilterList.with { $0.filters = fs.map(\.wire) }
        case .not(let inner): f.negation = inner.wire
        case .compare(let key, let op, let values):
            var c = Ragd_V1_Comparison()
            c.key = key
            switch op {
            case .eq: c.op = .eq
            case .ne: c.op = .ne
            case .in: c.op = .in
            case .lt: c.op = .lt
            case .lte: c.op = .lte
            case .gt: c.op = .gt
            case .gte: c.op = .gte
            case .exists: c.op = .exists
            }
            if op == .in { c.values = values.map(\.wire) } else if let v = values.first { c.value = v.wire }
            f.compare = c
        }
        return f
    }
}

extension SearchMode {
    public init(wire m: Ragd_V1_SearchMode) {
        switch m {
        case .vector: self = .vector
        case .keyword: self = .keyword
        default: self = .hybrid
        }
    }

    public var wire: Ragd_V1_SearchMode {
        switch self {
        case .vector: return .vector
        case .keyword: return .keyword
        case .hybrid: return .hybrid
        }
    }
}

extension RagDocument {
    public init(wire d: Ragd_V1_Document) throws(RagError) {
        self.init(id: d.id, text: d.text, metadata: try RagWire.metadata(fromWire: d.metadata))
    }

    public var wire: Ragd_V1_Document {
        .with { $0.id = id; $0.text = text; $0.metadata = wireMetadata(metadata) }
    }
}
