/// SIMD kernels over contiguous `Float` storage.
public enum VectorMath {
    /// Inner product of two `n`-float vectors. Four 16-wide accumulators keep
    /// enough independent adds in flight to run at memory speed.
    @inlinable @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
        var i = 0
        let stride = MemoryLayout<Float>.stride
        while i + 64 <= n {
            let o = i * stride
            s0 += ra.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            s1 += ra.loadUnaligned(fromByteOffset: o + 64, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: o + 64, as: SIMD16<Float>.self)
            s2 += ra.loadUnaligned(fromByteOffset: o + 128, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: o + 128, as: SIMD16<Float>.self)
            s3 += ra.loadUnaligned(fromByteOffset: o + 192, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: o + 192, as: SIMD16<Float>.self)
            i += 64
        }
        while i + 16 <= n {
            let o = i * stride
            s0 += ra.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            i += 16
        }
        var total = ((s0 + s1) + (s2 + s3)).sum()
        while i < n { total += a[i] * b[i]; i += 1 }
        return total
    }

    public static func dot(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        return a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in dot(pa.baseAddress!, pb.baseAddress!, a.count) } }
    }

    /// Scales `v` to unit length; a zero vector stays zero.
    public static func normalize(_ v: inout [Float]) {
        var norm: Float = 0
        for x in v { norm += x * x }
        norm = norm.squareRoot()
        guard norm > 0 else { return }
        for i in v.indices { v[i] /= norm }
    }
}
