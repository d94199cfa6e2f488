import Foundation

/// Appends little-endian integers, raw arrays and length-prefixed strings to
/// one buffer (what `PartitionIndex+Image` writes).
struct ImageWriter {
    private(set) var data = Data()

    init(capacity: Int) { data.reserveCapacity(capacity) }

    mutating func u64(_ v: UInt64) { data.append(le: v) }
    mutating func int(_ v: Int) { data.append(le: UInt64(bitPattern: Int64(v))) }
    mutating func u8(_ v: UInt8) { data.append(v) }

    /// The count, then the elements' bytes as they lie in memory.
    mutating func array<T: BitwiseCopyable>(_ a: [T]) {
        int(a.count)
        a.withUnsafeBytes { data.append(contentsOf: $0) }
    }

    mutating func raw(_ bytes: UnsafeRawBufferPointer) { data.append(contentsOf: bytes) }

    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { u in
            int(u.count)
            data.append(u.baseAddress!, count: u.count)
        }
    }
}

/// Reads what `ImageWriter` wrote, bounds-checked: every read past the end
/// (a truncated or damaged file) gives nil.
struct ImageReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func u64() -> UInt64? {
        guard remaining >= 8 else { return nil }
        defer { offset += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A count or length: non-negative and at most `limit`.
    mutating func int(limit: Int = Int(Int32.max)) -> Int? {
        guard let v = u64(), v <= UInt64(limit) else { return nil }
        return Int(v)
    }

    mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func raw(_ n: Int) -> UnsafeRawBufferPointer? {
        guard n >= 0, remaining >= n else { return nil }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n])
    }

    /// An array written by `ImageWriter.array`.
    mutating func array<T: BitwiseCopyable>(_: T.Type) -> [T]? {
        guard let n = int(), let r = raw(n * MemoryLayout<T>.stride) else { return nil }
        return [T](unsafeUninitializedCapacity: n) { buf, count in
            if n > 0 { UnsafeMutableRawPointer(buf.baseAddress!).copyMemory(from: r.baseAddress!, byteCount: r.count) }
            count = n
        }
    }

    mutating func string() -> String? {
        guard let n = int(limit: 1 << 20), let r = raw(n) else { return nil }
        return String(decoding: r, as: UTF8.self)
    }
}
