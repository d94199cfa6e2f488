/// What `ragctl bench --search-only` measures an exact scan against.
extension PartitionIndex {
    /// The C floor: every stored float read once by code compiled for this CPU's widest vectors.
    public func sumFloor() -> Double {
        vectors.withUnsafeBufferPointer { v in v.baseAddress.map { VectorMath.sumFloor($0, v.count) } ?? 0 }
    }

    /// The C scan alone: every row's inner product with `query` (no top-k, no bookkeeping).
    public func scanOnly(_ query: [Float], into out: inout [Float]) {
        let rows = vectors.count / dimension
        if out.count < rows { out = [Float](repeating: 0, count: rows) }
        vectors.withUnsafeBufferPointer { v in
            query.withUnsafeBufferPointer { q in
                out.withUnsafeMutableBufferPointer { o in
                    guard let vb = v.baseAddress, let qb = q.baseAddress, let ob = o.baseAddress else { return }
                    VectorMath.dotRows(vb, rows: rows, dim: dimension, query: qb, out: ob)
                }
            }
        }
    }

    /// Sums every stored float once: the memory-bandwidth floor that an exact
    /// scan is measured against in benchmarks.
    public func sumAll() -> Float {
        vectors.withUnsafeBufferPointer { v in
            guard let base = v.baseAddress else { return 0 }
            let raw = UnsafeRawPointer(base)
            var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
            var i = 0
            let n = v.count
            while i + 64 <= n {
                let o = i * 4
                s0 += raw.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
                s1 += raw.loadUnaligned(fromByteOffset: o + 64, as: SIMD16<Float>.self)
                s2 += raw.loadUnaligned(fromByteOffset: o + 128, as: SIMD16<Float>.self)
                s3 += raw.loadUnaligned(fromByteOffset: o + 192, as: SIMD16<Float>.self)
                i += 64
            }
            var t = ((s0 + s1) + (s2 + s3)).sum()
            while i < n { t += v[i]; i += 1 }
            return t
        }
    }
}

extension PartitionIndex {
    /// Every document id held here.
    public var documentIDs: [String] { Array(documentIndexKeys) }

    /// Every stored document's id and content hash, in slot order.
    public func forEachDocument(_ body: (String, UInt64) -> Void) {
        for case let entry? in documents { body(entry.id, entry.contentHash) }
    }

    /// A document as it was written (chunks and vectors); nil when this index
    /// keeps no texts (a server's partitions read documents from SQLite).
    public func stored(_ documentID: String) -> PreparedDocument? {
        storedDocument(documentID)
    }
}
