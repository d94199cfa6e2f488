import Foundation

/// What a graph node stands for in a partition: a chunk of a document version.
/// Saved with the graph, so that a graph written before a crash can be matched
/// against what SQLite holds after it.
public struct NodeLabel: Hashable, Sendable {
    public var documentID: String
    public var ordinal: Int32
    public var contentHash: UInt64

    public init(documentID: String, ordinal: Int32, contentHash: UInt64) {
        self.documentID = documentID
        self.ordinal = ordinal
        self.contentHash = contentHash
    }
}

/// The graph file: a header, the levels, the links of every layer, the
/// tombstones, the vectors, the int8 scales (a quantized graph), each live
/// node's label, and a checksum of all of it. Integers and floats are little-endian, as on every CPU Ragd runs on.
extension HNSWGraph {
    static let magic = Array("RGHNSW02".utf8)
    /// The same, but the vectors stay in the graph's kept file (an index
    /// image names it) and the int8 codes are written instead, with no labels:
    /// what a restart maps back without reading a float.
    static let magicVectorsOutside = Array("RGHNSW03".utf8)

    /// The graph and `labels` (one per node; nil for tombstones) as bytes.
    public func encoded(labels: [NodeLabel?]) -> Data { encoded(labels: labels, vectorsInside: true) }

    /// As `encoded`, for a quantized graph whose floats are in a kept file:
    /// its codes instead of its floats, and no labels.
    func encodedWithVectorsOutside() -> Data {
        precondition(codes != nil && vectors.path != nil)
        return encoded(labels: [], vectorsInside: false)
    }

    private func encoded(labels: [NodeLabel?], vectorsInside: Bool) -> Data {
        precondition(!vectorsInside || labels.count == count)
        var out = Data()
        out.reserveCapacity(64 + count * (1 + 4 * (m0 + 1) + 1 + (vectorsInside ? 4 * dimension + 32 : dimension)))
        out.append(contentsOf: vectorsInside ? Self.magic : Self.magicVectorsOutside)
        for v in [UInt64(dimension), UInt64(parameters.m), UInt64(parameters.efConstruction), parameters.seed, UInt64(count),
                  UInt64(bitPattern: Int64(entry)), UInt64(bitPattern: Int64(maxLevel)), parameters.quantized ? 1 : 0] { out.append(le: v) }
        out.append(contentsOf: levels)
        links0.withUnsafeBytes { out.append(contentsOf: $0) }
        for u in upper { u.withUnsafeBytes { out.append(contentsOf: $0) } }
        out.append(contentsOf: deleted.map { $0 ? 1 as UInt8 : 0 })
        if vectorsInside {
            vectors.withContiguousFloats { out.append(contentsOf: UnsafeRawBufferPointer($0)) }
            // The scales, not the codes: codes follow from scales and vectors, but
            // scales depend on the order vectors came in (they widen as it grows).
            codes?.scale.withUnsafeBytes { out.append(contentsOf: $0) }
        } else {
            codes!.scale.withUnsafeBytes { out.append(contentsOf: $0) }
            codes!.codes.withUnsafeBytes { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0.prefix(count * dimension))) }
        }
        for (i, label) in labels.enumerated() where !deleted[i] {
            let l = label ?? NodeLabel(documentID: "", ordinal: -1, contentHash: 0)
            let id = Array(l.documentID.utf8)
            out.append(le: l.contentHash)
            out.append(le: UInt64(bitPattern: Int64(l.ordinal)))
            out.append(le: UInt64(id.count))
            out.append(contentsOf: id)
        }
        out.append(le: Self.checksum(out))
        return out
    }

    /// A graph read back by `encoded`, with its labels; nil when the bytes are
    /// not such a graph (damaged, truncated, or other parameters than `parameters`).
    /// `outside`: the rows of a graph saved with its vectors outside
    /// (`encodedWithVectorsOutside`), reopened from the file its image names;
    /// such a graph is refused without them, and the others with them.
    public static func decode(_ data: Data, dimension: Int, parameters: Parameters, backing: VectorBacking = .memory) -> (HNSWGraph, [NodeLabel?])? {
        decode(data, dimension: dimension, parameters: parameters, backing: backing, outside: nil)
    }

    static func decode(_ data: Data, dimension: Int, parameters: Parameters, backing: VectorBacking, outside: VectorRows?) -> (HNSWGraph, [NodeLabel?])? {
        guard data.count >= magic.count + 8 * 8 + 8 else { return nil }
        let body = data.prefix(data.count - 8)
        var reader = ByteReader(data: data)
        guard checksum(body) == reader.u64(at: data.count - 8) else { return nil }
        guard reader.bytes(magic.count).map(Array.init) == (outside == nil ? magic : magicVectorsOutside) else { return nil }
        let header = (0..<8).compactMap { _ in reader.u64() }
        guard header.count == 8, header[0] == UInt64(dimension), header[1] == UInt64(parameters.m),
              header[2] == UInt64(parameters.efConstruction), header[3] == parameters.seed, header[4] < UInt64(Int32.max),
              header[7] == (parameters.quantized ? 1 : 0) else { return nil }
        let n = Int(header[4])
        if let outside, outside.count != n || !parameters.quantized { return nil }
        let graph = outside.map { HNSWGraph(dimension: dimension, parameters: parameters, rows: $0) }
            ?? HNSWGraph(dimension: dimension, parameters: parameters, backing: backing)
        let entry = Int64(bitPattern: header[5]), maxLevel = Int64(bitPattern: header[6])
        guard (n == 0 && entry == -1) || (0..<Int64(n)).contains(entry), (-1...15).contains(maxLevel) else { return nil }
        guard let levels = reader.bytes(n).map(Array.init), levels.allSatisfy({ $0 <= 15 }),
              let links0 = reader.array(Int32.self, n * (graph.m0 + 1)) else { return nil }
        var upper: [[Int32]] = []
        upper.reserveCapacity(n)
        for l in levels {
            guard let u = reader.array(Int32.self, Int(l) * (parameters.m + 1)) else { return nil }
            upper.append(u)
        }
        guard let deleted = reader.bytes(n).map({ $0.map { $0 != 0 } }) else { return nil }
        if outside != nil {
            guard let scale = reader.array(Float.self, dimension), let codes = reader.array(Int8.self, n * dimension) else { return nil }
            graph.codes = ScalarQuantizer(scale: scale, codes: codes)
        } else if let vectors = reader.bytes(n * dimension * 4) {
            // Straight from the file's bytes into the graph's rows (no array between).
            vectors.withUnsafeBytes { graph.vectors.append(raw: $0, rows: n) }
        } else {
            return nil
        }
        if parameters.quantized, outside == nil {
            guard let scale = reader.array(Float.self, dimension),
                  let codes = graph.vectors.withContiguousFloats({ ScalarQuantizer(scale: scale, vectors: $0, rows: n) }) else { return nil }
            graph.codes = codes
        }
        // Every link count and target in range, or the walk would read outside the graph.
        func valid(_ block: ArraySlice<Int32>, cap: Int) -> Bool {
            guard let c = block.first, (0...Int32(cap)).contains(c) else { return false }
            return block.dropFirst().prefix(Int(c)).allSatisfy { (0..<Int32(n)).contains($0) }
        }
        for i in 0..<n {
            guard valid(links0[i * (graph.m0 + 1)..<(i + 1) * (graph.m0 + 1)], cap: graph.m0) else { return nil }
            for l in 0..<Int(levels[i]) {
                guard valid(upper[i][l * (parameters.m + 1)..<(l + 1) * (parameters.m + 1)], cap: parameters.m) else { return nil }
            }
        }
        var labels = [NodeLabel?](repeating: nil, count: n)
        for i in 0..<n where !deleted[i] && outside == nil {
            guard let hash = reader.u64(), let ordinal = reader.u64(), let length = reader.u64(), length <= 4096,
                  let id = reader.bytes(Int(length)) else { return nil }
            labels[i] = NodeLabel(documentID: String(decoding: id, as: UTF8.self), ordinal: Int32(truncatingIfNeeded: Int64(bitPattern: ordinal)), contentHash: hash)
        }
        guard reader.offset == data.count - 8 else { return nil }
        graph.levels = levels
        graph.links0 = links0
        graph.upper = upper
        graph.deleted = deleted
        graph.deletedCount = deleted.filter { $0 }.count
        graph.entry = Int32(entry)
        graph.maxLevel = Int(maxLevel)
        return (graph, labels)
    }

    /// A 64-bit checksum, eight bytes at a time (a damaged file is rebuilt, not trusted).
    static func checksum(_ data: Data) -> UInt64 { data.withUnsafeBytes { checksum($0) } }

    static func checksum(_ raw: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        var i = 0
        while i + 8 <= raw.count {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x0000_0100_0000_01B3
            h ^= h >> 29
            i += 8
        }
        while i < raw.count {
            h = (h ^ UInt64(raw[i])) &* 0x0000_0100_0000_01B3
            i += 1
        }
        return h
    }
}

extension Data {
    mutating func append(le v: UInt64) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
}

/// Reads a graph file front to back; nil past its end.
struct ByteReader {
    let data: Data
    var offset = 0

    init(data: Data) { self.data = data }

    func u64(at at: Int) -> UInt64 {
        data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
    }

    mutating func u64() -> UInt64? {
        guard offset + 8 <= data.count else { return nil }
        defer { offset += 8 }
        return u64(at: offset)
    }

    mutating func bytes(_ n: Int) -> Data? {
        guard n >= 0, offset + n <= data.count else { return nil }
        defer { offset += n }
        let start = data.startIndex + offset
        return data[start..<start + n]
    }

    mutating func array<T>(_: T.Type, _ n: Int) -> [T]? {
        let size = n * MemoryLayout<T>.stride
        guard n >= 0, offset + size <= data.count else { return nil }
        if n == 0 { return [] }
        defer { offset += size }
        return data.withUnsafeBytes { raw in
            [T](unsafeUninitializedCapacity: n) { buf, count in
                memcpy(buf.baseAddress!, raw.baseAddress! + offset, size)
                count = n
            }
        }
    }
}
