/// Sizes a request may have, checked where it enters, before any work: they
/// bound what one call can make the server hold, compute and send back (every
/// stored metadata entry comes back with each hit, so it is bounded at write).
public struct RequestLimits: Sendable, Hashable {
    /// Documents in one Index or IndexStream call, or one SubmitJob part.
    public var maxDocumentsPerCall = 10_000
    /// Documents in one job, all parts together.
    public var maxDocumentsPerJob = 1_000_000
    /// UTF-8 bytes of one document's text.
    public var maxDocumentBytes = 4 * 1024 * 1024
    /// Metadata entries of one document, bytes of a key, of a string value, and of all together.
    public var maxMetadataEntries = 64
    public var maxMetadataKeyBytes = 128
    public var maxMetadataValueBytes = 2048
    public var maxMetadataBytes = 8192
    /// Nodes of one filter (comparisons and and/or/not), and values of one `in` list.
    public var maxFilterNodes = 256
    public var maxFilterInValues = 1024

    public init() {}

    /// Checks one document's size and metadata (INVALID_ARGUMENT, naming it).
    public func check(_ d: RagDocument) throws(RagError) {
        let name = d.id.truncatedUTF8(maxBytes: 64).debugDescription
        guard d.text.utf8.count <= maxDocumentBytes else {
            throw .invalidArgument("document \(name) has \(d.text.utf8.count) bytes of text; the limit is \(maxDocumentBytes): split it")
        }
        guard d.metadata.count <= maxMetadataEntries else {
            throw .invalidArgument("document \(name) has \(d.metadata.count) metadata entries; the limit is \(maxMetadataEntries)")
        }
        var total = 0
        for (k, v) in d.metadata {
            guard !k.isEmpty, k.utf8.count <= maxMetadataKeyBytes else {
                throw .invalidArgument("document \(name): metadata keys must be 1-\(maxMetadataKeyBytes) bytes")
            }
            var size = k.utf8.count
            if case .string(let s) = v {
                guard s.utf8.count <= maxMetadataValueBytes else {
                    throw .invalidArgument("document \(name): metadata value of \(k.truncatedUTF8(maxBytes: 64).debugDescription) is longer than \(maxMetadataValueBytes) bytes")
                }
                size += s.utf8.count
            } else {
                size += 8
            }
            total += size
        }
        guard total <= maxMetadataBytes else {
            throw .invalidArgument("document \(name) has \(total) bytes of metadata; the limit is \(maxMetadataBytes)")
        }
    }

    /// Checks a filter's size (INVALID_ARGUMENT), before it is evaluated anywhere.
    public func check(_ f: MetadataFilter) throws(RagError) {
        var nodes = 0
        func walk(_ f: MetadataFilter) throws(RagError) {
            nodes += 1
            guard nodes <= maxFilterNodes else { throw .invalidArgument("filter has more than \(maxFilterNodes) nodes") }
            switch f {
            case .and(let fs), .or(let fs): for x in fs { try walk(x) }
            case .not(let x): try walk(x)
            case .compare(_, let op, let values):
                if op == .in, values.count > maxFilterInValues {
                    throw .invalidArgument("filter: an in list has \(values.count) values; the limit is \(maxFilterInValues)")
                }
            }
        }
        try walk(f)
    }
}
