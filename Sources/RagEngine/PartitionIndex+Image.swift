import Foundation
import RagCore

/// Where a saved index image stands against its partition file: the file's
/// lineage and the generation of the last write the image holds.
public struct ImageStamp: Sendable, Hashable {
    public var lineage: Int64
    public var generation: UInt64

    public init(lineage: Int64, generation: UInt64) {
        self.lineage = lineage
        self.generation = generation
    }
}

/// The index image: everything a start would otherwise rebuild from every
/// chunk in SQLite (documents, slots, postings, vectors or the graph), so a
/// restart reads it back instead of tokenising and inserting again.
///
/// Layout: a header (magic, dimension, kind, stamp, the graph's length, the
/// kept vector file's name and rows), the graph file (`HNSWGraph.encoded`,
/// with its own checksum; empty without a graph), then the index's arrays and
/// a checksum of everything but the graph. Little-endian, as on every CPU
/// Ragd runs on. The graph comes first so that an image too old to use whole
/// (`PartitionStore.changed` says nil) still gives its graph to adopt by labels.
///
/// A graph that walks int8 codes keeps its floats in a kept file
/// (`VectorBacking.keptFile`): the image holds its codes and names the file
/// and how many rows of it are the graph's, so neither a save nor a start
/// copies a float. Those rows are not covered by the checksum (a start would
/// otherwise read every one): a damaged float changes that chunk's exact
/// score, and SQLite still holds the original.
public struct IndexImage {
    /// Written one after another, they are the image file.
    public var parts: [Data]
    /// The kept vector file the image names, and a descriptor of it (-1:
    /// none) that the caller flushes before the image may replace the last
    /// one, then closes.
    public var vectorFile: String?
    public var vectorDescriptor: Int32
}
extension PartitionIndex {
    static let imageMagic = Array("RGIMAGE2".utf8)
    static let headerBytes = 8 + 5 * 8

    private static func tag(_ kind: VectorIndexKind) -> UInt64 {
        switch kind {
        case .flat: 0
        case .int8: 1
        case .hnsw: 2
        }
    }

    /// The image as parts to write one after another (nil: this index keeps
    /// texts, which an image does not hold, or chunks wait to be linked into its graph).
    public func image(stamp: ImageStamp) -> IndexImage? {
        // Chunks waiting for the graph have no node to save yet.
        guard !keepsTexts, pendingVectors.isEmpty else { return nil }
        let outside = graph.flatMap { $0.codes != nil ? $0.vectors.path : nil }
        let graphBytes = outside != nil ? graph!.encodedWithVectorsOutside() : graphData() ?? Data()
        var header = ImageWriter(capacity: Self.headerBytes + 64)
        header.raw(UnsafeRawBufferPointer(start: Self.imageMagic, count: 8))
        header.int(dimension)
        header.u64(Self.tag(kind))
        header.u64(UInt64(bitPattern: stamp.lineage))
        header.u64(stamp.generation)
        header.int(graphBytes.count)
        header.string(outside.map { ($0 as NSString).lastPathComponent } ?? "")
        header.int(outside != nil ? graph!.count : 0)

        let postingCount = postings.values.reduce(0) { $0 + $1.count }
        var w = ImageWriter(capacity: slotDocument.count * (16 + (graph == nil ? dimension * 4 : 0)) + postingCount * 8 + documentCount * 64)
        w.array(slotDocument)
        w.array(slotOrdinal)
        w.array(slotLength)
        w.array(freeSlots)
        w.int(documents.count)
        for entry in documents {
            guard let entry else { w.u8(0); continue }
            w.u8(1)
            w.string(entry.id)
            w.u64(entry.contentHash)
            w.int(entry.metadata.count)
            for (key, value) in entry.metadata {
                w.string(key)
                switch value {
                case .string(let s): w.u8(0); w.string(s)
                case .number(let n): w.u8(1); w.u64(n.bitPattern)
                case .bool(let b): w.u8(2); w.u8(b ? 1 : 0)
                }
            }
            w.array(entry.slots)
        }
        w.array(freeDocuments)
        w.int(postings.count)
        for (term, list) in postings {
            w.string(term)
            w.array(list)
        }
        w.int(totalLength)
        w.int(chunkCount)
        switch kind {
        case .flat:
            w.array(vectors)
        case .int8:
            w.array(vectors)
            w.array(quantizer!.scale)
            w.array(quantizer!.codes)
        case .hnsw:
            w.array(slotNode)
            w.array(nodeSlot)
        }
        var sum = Data(capacity: 8)
        sum.append(le: Self.imageChecksum(header: header.data, body: w.data))
        return IndexImage(parts: [header.data, graphBytes, w.data, sum], vectorFile: outside,
                          vectorDescriptor: outside != nil ? graph!.vectors.duplicateDescriptor() : -1)
    }

    /// The checksum of the header (the stamp above all: a wrong generation
    /// would skip writes) and the index's arrays; the graph has its own.
    static func imageChecksum(header: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer) -> UInt64 {
        HNSWGraph.checksum(body) &+ HNSWGraph.checksum(header) &* 0x9E37_79B9_7F4A_7C15
    }

    static func imageChecksum(header: Data, body: Data) -> UInt64 {
        header.withUnsafeBytes { h in body.withUnsafeBytes { imageChecksum(header: h, body: $0) } }
    }

    struct ImageHeader {
        var tag: UInt64
        var stamp: ImageStamp
        /// Where the graph is in the image (the header ends where it begins).
        var graph: Range<Int>
        var vectorFile: String
        var vectorRows: Int
    }

    static func header(_ image: Data, dimension: Int) -> ImageHeader? {
        image.withUnsafeBytes { raw in
            var r = ImageReader(raw)
            guard let magic = r.raw(8), Array(magic) == imageMagic, r.int() == dimension, let tag = r.u64(), let lineage = r.u64(),
                  let generation = r.u64(), let length = r.int(limit: raw.count), let file = r.string(), let rows = r.int(),
                  r.remaining >= length else { return nil }
            return ImageHeader(tag: tag, stamp: ImageStamp(lineage: Int64(bitPattern: lineage), generation: generation),
                               graph: r.offset..<r.offset + length, vectorFile: file, vectorRows: rows)
        }
    }

    /// The graph file inside an image (nil: not an image, or no graph in it),
    /// to adopt when the image as a whole is too old to use. A graph whose
    /// floats are in a kept file is not given (it cannot be adopted alone).
    public static func imageGraph(_ image: Data, dimension: Int) -> Data? {
        guard let h = header(image, dimension: dimension), !h.graph.isEmpty, h.vectorFile.isEmpty else { return nil }
        return image[image.startIndex + h.graph.lowerBound..<image.startIndex + h.graph.upperBound]
    }

    /// An index read back from an image, and the image's stamp; nil when the
    /// bytes are not an image of this dimension and of one of `kinds`, or are
    /// damaged anywhere (then the caller loads from SQLite instead).
    public static func decodeImage(_ image: Data, partition: Int, dimension: Int, kinds: [VectorIndexKind],
                                   vectorBacking: VectorBacking) -> (PartitionIndex, ImageStamp)? {
        guard let h = header(image, dimension: dimension), let kind = kinds.first(where: { tag($0) == h.tag }) else { return nil }
        let index = PartitionIndex(dimension: dimension, partition: partition, kind: kind, keepsTexts: false, vectorBacking: vectorBacking)
        if case .hnsw = kind {
            let bytes = image[image.startIndex + h.graph.lowerBound..<image.startIndex + h.graph.upperBound]
            let backing = index.backing(for: index.hnsw)
            var outside: VectorRows?
            if !h.vectorFile.isEmpty {
                // Only a file of this partition's, beside it.
                guard case .keptFile(let prefix) = backing, h.vectorFile.hasPrefix((prefix as NSString).lastPathComponent), !h.vectorFile.contains("/"),
                      let rows = VectorRows(dimension: dimension, reopening: (prefix as NSString).deletingLastPathComponent + "/" + h.vectorFile,
                                            rows: h.vectorRows, backing: backing) else { return nil }
                outside = rows
            }
            guard let (graph, _) = HNSWGraph.decode(bytes, dimension: dimension, parameters: index.hnsw.parameters, backing: backing, outside: outside)
            else { return nil }
            index.graph = graph
        }
        let ok = image.withUnsafeBytes { raw -> Bool in
            let body = UnsafeRawBufferPointer(rebasing: raw[h.graph.upperBound...])
            guard body.count >= 8 else { return false }
            let content = UnsafeRawBufferPointer(rebasing: body[..<(body.count - 8)])
            let sum = imageChecksum(header: UnsafeRawBufferPointer(rebasing: raw[..<h.graph.lowerBound]), body: content)
            guard sum == UInt64(littleEndian: body.loadUnaligned(fromByteOffset: body.count - 8, as: UInt64.self)) else { return false }
            var r = ImageReader(content)
            return index.readImage(&r) && r.remaining == 0
        }
        return ok ? (index, h.stamp) : nil
    }

    /// Fills this (new, empty) index from an image's arrays; false when any
    /// count or reference is out of range.
    private func readImage(_ r: inout ImageReader) -> Bool {
        guard let slotDocument = r.array(Int32.self), let slotOrdinal = r.array(Int32.self), let slotLength = r.array(Int32.self),
              let freeSlots = r.array(Int32.self) else { return false }
        let slots = slotDocument.count
        guard slotOrdinal.count == slots, slotLength.count == slots, freeSlots.allSatisfy({ (0..<Int32(slots)).contains($0) }),
              let documentCount = r.int() else { return false }
        guard slotDocument.allSatisfy({ $0 >= -1 && $0 < Int32(documentCount) }) else { return false }
        var documents: [DocumentEntry?] = []
        documents.reserveCapacity(documentCount)
        var documentIndex: [String: Int32] = [:]
        documentIndex.reserveCapacity(documentCount)
        for d in 0..<documentCount {
            guard let present = r.u8() else { return false }
            if present == 0 { documents.append(nil); continue }
            guard let id = r.string(), let hash = r.u64(), let fields = r.int(limit: 1 << 16) else { return false }
            var metadata: Metadata = [:]
            for _ in 0..<fields {
                guard let key = r.string(), let kind = r.u8() else { return false }
                switch kind {
                case 0: guard let s = r.string() else { return false }; metadata[key] = .string(s)
                case 1: guard let n = r.u64() else { return false }; metadata[key] = .number(Double(bitPattern: n))
                case 2: guard let b = r.u8() else { return false }; metadata[key] = .bool(b != 0)
                default: return false
                }
            }
            guard let entrySlots = r.array(Int32.self), entrySlots.allSatisfy({ (0..<Int32(slots)).contains($0) && slotDocument[Int($0)] == Int32(d) }),
                  documentIndex.updateValue(Int32(d), forKey: id) == nil else { return false }
            documents.append(DocumentEntry(id: id, metadata: metadata, contentHash: hash, slots: entrySlots))
        }
        guard let freeDocuments = r.array(Int32.self), freeDocuments.allSatisfy({ (0..<Int32(documentCount)).contains($0) }),
              let termCount = r.int() else { return false }
        var postings: [String: [Posting]] = [:]
        postings.reserveCapacity(termCount)
        for _ in 0..<termCount {
            guard let term = r.string(), let list = r.array(Posting.self), list.allSatisfy({ (0..<Int32(slots)).contains($0.slot) }) else { return false }
            postings[term] = list
        }
        guard let totalLength = r.int(limit: Int.max), let chunkCount = r.int(limit: slots) else { return false }
        switch kind {
        case .flat:
            guard let vectors = r.array(Float.self), vectors.count == slots * dimension else { return false }
            self.vectors = vectors
        case .int8:
            guard let vectors = r.array(Float.self), vectors.count == slots * dimension, let scale = r.array(Float.self), scale.count == dimension,
                  let codes = r.array(Int8.self), codes.count == slots * dimension else { return false }
            self.vectors = vectors
            quantizer = ScalarQuantizer(scale: scale, codes: codes)
        case .hnsw:
            guard let graph, let slotNode = r.array(Int32.self), let nodeSlot = r.array(Int32.self), slotNode.count == slots,
                  nodeSlot.count == graph.count, slotNode.allSatisfy({ $0 >= -1 && $0 < Int32(graph.count) }),
                  nodeSlot.allSatisfy({ $0 >= -1 && $0 < Int32(slots) }) else { return false }
            self.slotNode = slotNode
            self.nodeSlot = nodeSlot
        }
        self.slotDocument = slotDocument
        self.slotOrdinal = slotOrdinal
        self.slotLength = slotLength
        self.freeSlots = freeSlots
        self.documents = documents
        self.documentIndex = documentIndex
        self.freeDocuments = freeDocuments
        self.postings = postings
        self.totalLength = totalLength
        self.chunkCount = chunkCount
        return true
    }

    /// Starts bringing an index read from an image up to date: the documents
    /// written or deleted since (`ids`) are dropped; the caller then upserts
    /// what SQLite holds of them now. Their old texts are gone from disk, so
    /// their postings are found by one sweep of every list, not one per document.
    public func dropStale(_ ids: Set<String>) {
        var slots = Set<Int32>()
        for id in ids { if let d = documentIndex[id], let entry = documents[Int(d)] { slots.formUnion(entry.slots) } }
        if !slots.isEmpty { sweepPostings(slots) }
        for id in ids { remove(id, sweptPostings: true) }
    }
}
