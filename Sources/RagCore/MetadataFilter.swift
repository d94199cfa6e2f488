/// A metadata filter: a tree of `and` / `or` / `not` over comparisons on one key.
///
/// Semantics (documented in README, tested in RagEngineTests):
/// - A comparison on a key the chunk does not have is false, except `ne`,
///   which is true (as MongoDB's `$ne`), and `not`, which negates.
/// - Numbers compare numerically. A string that spells a number compares
///   with a number numerically (`section=1` matches `"1"`); other mixes are false.
/// - Strings order byte-wise (`lt` etc.); booleans only support eq/ne/in.
public indirect enum MetadataFilter: Sendable, Hashable {
    public enum Op: String, Sendable, Hashable, CaseIterable {
        case eq, ne, `in`, lt, lte, gt, gte, exists
    }

    case and([MetadataFilter])
    case or([MetadataFilter])
    case not(MetadataFilter)
    case compare(key: String, op: Op, values: [MetadataValue])

    /// Checks structure: non-empty keys and lists, operand counts and types.
    public func validate(depth: Int = 0) throws(RagError) {
        guard depth < 32 else { throw .invalidArgument("filter is nested deeper than 32 levels") }
        switch self {
        case .and(let fs), .or(let fs):
            guard !fs.isEmpty else { throw .invalidArgument("filter: an and/or list must not be empty") }
            for f in fs { try f.validate(depth: depth + 1) }
        case .not(let f):
            try f.validate(depth: depth + 1)
        case .compare(let key, let op, let values):
            guard !key.isEmpty else { throw .invalidArgument("filter: a comparison needs a metadata key") }
            switch op {
            case .exists:
                guard values.isEmpty else { throw .invalidArgument("filter: exists takes no value (key \(key))") }
            case .in:
                guard !values.isEmpty else { throw .invalidArgument("filter: in needs at least one value (key \(key))") }
            case .eq, .ne:
                guard values.count == 1 else { throw .invalidArgument("filter: \(op) needs exactly one value (key \(key))") }
            case .lt, .lte, .gt, .gte:
                guard values.count == 1 else { throw .invalidArgument("filter: \(op) needs exactly one value (key \(key))") }
                if case .bool = values[0] { throw .invalidArgument("filter: \(op) cannot order booleans (key \(key))") }
            }
        }
    }

    /// Evaluates the filter against one chunk's metadata.
    public func matches(_ metadata: Metadata) -> Bool {
        switch self {
        case .and(let fs): return fs.allSatisfy { $0.matches(metadata) }
        case .or(let fs): return fs.contains { $0.matches(metadata) }
        case .not(let f): return !f.matches(metadata)
        case .compare(let key, let op, let values):
            guard let v = metadata[key] else { return op == .ne }
            switch op {
            case .exists: return true
            case .eq: return Self.equal(v, values[0])
            case .ne: return !Self.equal(v, values[0])
            case .in: return values.contains { Self.equal(v, $0) }
            case .lt: return Self.order(v, values[0]).map { $0 < 0 } ?? false
            case .lte: return Self.order(v, values[0]).map { $0 <= 0 } ?? false
            case .gt: return Self.order(v, values[0]).map { $0 > 0 } ?? false
            case .gte: return Self.order(v, values[0]).map { $0 >= 0 } ?? false
            }
        }
    }

    static func equal(_ a: MetadataValue, _ b: MetadataValue) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.bool(let x), .bool(let y)): return x == y
        case (.string(let s), .number(let n)), (.number(let n), .string(let s)):
            return Double(s.trimmingSpaces) == n
        default: return false
        }
    }

    /// -1, 0, 1, or nil when the two cannot be ordered.
    static func order(_ a: MetadataValue, _ b: MetadataValue) -> Int? {
        func cmp<T: Comparable>(_ x: T, _ y: T) -> Int { x < y ? -1 : (x == y ? 0 : 1) }
        switch (a, b) {
        case (.number(let x), .number(let y)): return cmp(x, y)
        case (.string(let x), .string(let y)):
            if x.utf8.elementsEqual(y.utf8) { return 0 }
            return x.utf8.lexicographicallyPrecedes(y.utf8) ? -1 : 1
        case (.string(let s), .number(let y)): return Double(s.trimmingSpaces).map { cmp($0, y) }
        case (.number(let x), .string(let s)): return Double(s.trimmingSpaces).map { cmp(x, $0) }
        default: return nil
        }
    }

    /// A canonical text form: children of and/or sorted, so equivalent filters
    /// written in a different order have the same form (used in cache keys).
    public var canonical: String {
        switch self {
        case .and(let fs): return "and(" + fs.map(\.canonical).sorted().joined(separator: ",") + ")"
        case .or(let fs): return "or(" + fs.map(\.canonical).sorted().joined(separator: ",") + ")"
        case .not(let f): return "not(" + f.canonical + ")"
        case .compare(let key, let op, let values):
            let vs = values.map(\.canonical)
            return "\(op)(\(key.debugDescription)" + (vs.isEmpty ? "" : "," + (op == .in ? vs.sorted() : vs).joined(separator: ",")) + ")"
        }
    }
}

extension MetadataValue {
    var canonical: String {
        switch self {
        case .string(let s): return "s" + s.debugDescription
        case .number(let n): return "n\(n)"
        case .bool(let b): return b ? "true" : "false"
        }
    }
}

extension String {
    var trimmingSpaces: Substring {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }
}
