import Foundation
import RagCore

/// Identifies a chunk: its document and its position in that document.
/// Orders by document id (UTF-8 bytes, so every language agrees) then ordinal;
/// this order breaks score ties everywhere in Ragd.
public struct ChunkKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var documentID: String
    public var ordinal: Int

    public init(documentID: String, ordinal: Int) {
        self.documentID = documentID
        self.ordinal = ordinal
    }

    public static func < (a: ChunkKey, b: ChunkKey) -> Bool {
        if a.documentID == b.documentID { return a.ordinal < b.ordinal }
        return a.documentID.utf8.lexicographicallyPrecedes(b.documentID.utf8)
    }

    /// The public chunk id: `documentID#ordinal`.
    public var description: String { "\(documentID)#\(ordinal)" }
}

/// A document ready to be written: its chunks already embedded.
public struct PreparedDocument: Sendable {
    public var id: String
    public var metadata: Metadata
    public var contentHash: UInt64
    public var chunks: [String]
    public var embeddings: [[Float]]
    /// The original text, deflated (`SourceText`), kept on disk for re-chunking
    /// and re-embedding; empty when unknown (indexed before it was kept). Never
    /// held by the in-memory index.
    public var source: Data

    public init(id: String, metadata: Metadata, contentHash: UInt64, chunks: [String], embeddings: [[Float]], source: Data = Data()) {
        self.id = id
        self.metadata = metadata
        self.contentHash = contentHash
        self.chunks = chunks
        self.embeddings = embeddings
        self.source = source
    }
}

/// One scored chunk, as a partition returns it.
public struct Hit: Sendable {
    public var key: ChunkKey
    public var score: Double
    public var text: String
    public var metadata: Metadata
    public var partition: Int
    /// The stored embedding, when the search asked for it (reranking).
    public var vector: [Float]?
    /// The content hash of the document version that was scored (0: unknown):
    /// a text read later is checked against it.
    public var contentHash: UInt64

    public init(key: ChunkKey, score: Double, text: String, metadata: Metadata, partition: Int, vector: [Float]? = nil, contentHash: UInt64 = 0) {
        self.contentHash = contentHash
        self.key = key
        self.score = score
        self.text = text
        self.metadata = metadata
        self.partition = partition
        self.vector = vector
    }
}

/// Corpus statistics BM25 needs. Gathered from every partition (or shard) and
/// summed before scoring, so scores do not depend on how data is partitioned.
public struct KeywordStats: Sendable, Hashable {
    public var chunkCount: Int
    public var totalLength: Int
    public var documentFrequency: [String: Int]

    public init(chunkCount: Int = 0, totalLength: Int = 0, documentFrequency: [String: Int] = [:]) {
        self.chunkCount = chunkCount
        self.totalLength = totalLength
        self.documentFrequency = documentFrequency
    }

    public mutating func add(_ other: KeywordStats) {
        chunkCount += other.chunkCount
        totalLength += other.totalLength
        documentFrequency.merge(other.documentFrequency, uniquingKeysWith: +)
    }
}

/// Merges ranked lists into the global top `k`, exactly: the same order as if
/// one index had held everything (score desc, then `ChunkKey`).
public enum HitMerge {
    public static func topK(_ lists: [[Hit]], k: Int) -> [Hit] {
        var all = lists.flatMap { $0 }
        all.sort { $0.score > $1.score || ($0.score == $1.score && $0.key < $1.key) }
        return Array(all.prefix(k))
    }
}
