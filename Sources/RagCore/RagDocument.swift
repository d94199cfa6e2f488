import Foundation

/// A document to index: an id (unique in its collection), its text, and metadata
/// that filters can test.
public struct RagDocument: Sendable, Hashable {
    public var id: String
    public var text: String
    public var metadata: Metadata

    public init(id: String, text: String, metadata: Metadata = [:]) {
        self.id = id
        self.text = text
        self.metadata = metadata
    }
}

extension RagDocument {
    /// Document ids are normalised once, where they enter (Index, IndexStream,
    /// jobs, Delete), to Unicode NFC. Past that point every layer compares them
    /// as bytes, and Swift's `==` (canonical equivalence) agrees with SQLite and
    /// with partition placement: the NFC and NFD spellings of one name (macOS
    /// file names are NFD) are one document, stored and returned in NFC.
    public static func normalizedID(_ id: String) -> String {
        if id.utf8.allSatisfy({ $0 < 0x80 }) { return id }  // ASCII is already NFC
        return id.precomposedStringWithCanonicalMapping
    }
}
