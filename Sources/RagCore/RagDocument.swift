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
