import Foundation
import RagCore
import RagEngine
import RagWire

// Engine <-> wire conversions for the internal shard RPCs. Floats travel as
// float32 and scores as double, so a remote shard's results are bit-identical
// to a local one's (the basis of "sharded results equal single-node results").

extension KeywordStats {
    init(wire w: Ragd_V1_KeywordStats) {
        self.init(chunkCount: Int(w.chunkCount), totalLength: Int(w.totalLength),
                  documentFrequency: w.documentFrequency.mapValues { Int($0) })
    }

    var wire: Ragd_V1_KeywordStats {
        var w = Ragd_V1_KeywordStats()
        w.chunkCount = UInt64(chunkCount)
        w.totalLength = UInt64(totalLength)
        w.documentFrequency = documentFrequency.mapValues { UInt64($0) }
        return w
    }
}

extension Hit {
    init(wire w: Ragd_V1_ShardHit) throws(RagError) {
        self.init(key: ChunkKey(documentID: w.documentID, ordinal: Int(w.ordinal)), score: w.score, text: w.text,
                  metadata: try RagWire.metadata(fromWire: w.metadata), partition: Int(w.partition), vector: w.vector.isEmpty ? nil : w.vector,
                  contentHash: w.contentHash)
    }

    var wire: Ragd_V1_ShardHit {
        var w = Ragd_V1_ShardHit()
        w.documentID = key.documentID
        w.ordinal = UInt32(key.ordinal)
        w.score = score
        w.text = text
        w.metadata = wireMetadata(metadata)
        w.partition = UInt32(partition)
        if let vector { w.vector = vector }
        w.contentHash = contentHash
        return w
    }
}

extension Ragd_V1_ChunkText {
    init(key: ChunkKey, contentHash: UInt64, text: String = "") {
        self.init()
        documentID = key.documentID
        ordinal = UInt32(clamping: key.ordinal)
        self.contentHash = contentHash
        self.text = text
    }

    var key: ChunkKey { ChunkKey(documentID: documentID, ordinal: Int(ordinal)) }
}

extension PreparedDocument {
    init(wire w: Ragd_V1_StoredDocument, dimension: Int) throws(RagError) {
        let floats = w.embeddings.count / 4
        guard dimension > 0, floats == w.chunks.count * dimension, w.embeddings.count % 4 == 0 else {
            throw .invalidArgument("document \(w.id): \(w.chunks.count) chunks but \(floats) floats for dimension \(dimension)")
        }
        var all = [Float](repeating: 0, count: floats)
        _ = all.withUnsafeMutableBytes { w.embeddings.copyBytes(to: $0) }
        let rows = (0..<w.chunks.count).map { Array(all[$0 * dimension..<($0 + 1) * dimension]) }
        self.init(id: w.id, metadata: try RagWire.metadata(fromWire: w.metadata), contentHash: w.contentHash, chunks: w.chunks, embeddings: rows,
                  source: w.source)
    }

    var wire: Ragd_V1_StoredDocument {
        var w = Ragd_V1_StoredDocument()
        w.id = id
        w.metadata = wireMetadata(metadata)
        w.contentHash = contentHash
        w.chunks = chunks
        var bytes = Data(capacity: embeddings.count * (embeddings.first?.count ?? 0) * 4)
        for row in embeddings { row.withUnsafeBytes { bytes.append(contentsOf: $0) } }
        w.embeddings = bytes
        w.source = source
        return w
    }
}

extension Ragd_V1_StoredDocument {
    /// An upper bound of its encoded size, without encoding it: each length-
    /// delimited field costs at most its bytes plus 6 (tag and length varint),
    /// a metadata entry at most its key plus 32 (a value message, or a string's bytes).
    var encodedSizeBound: Int {
        var n = id.utf8.count + 6 + embeddings.count + 6 + 11 + source.count + 6
        for c in chunks { n += c.utf8.count + 6 }
        for (k, v) in metadata {
            n += k.utf8.count + 32
            if case .stringValue(let s)? = v.kind { n += s.utf8.count }
        }
        return n
    }
}
