/// FNV-1a, 64 bit, over UTF-8 bytes: the same value on every machine and
/// every run (Swift's `Hasher` is seeded per process, so it must never decide
/// placement or anything persisted).
public enum StableHash {
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    public static let prime: UInt64 = 0x0000_0100_0000_01b3

    @inlinable
    public static func fnv1a(_ string: String, seed: UInt64 = offsetBasis) -> UInt64 {
        var h = seed
        for b in string.utf8 {
            h ^= UInt64(b)
            h &*= prime
        }
        return h
    }

    @inlinable
    public static func fnv1a<S: Sequence>(bytes: S, seed: UInt64 = offsetBasis) -> UInt64 where S.Element == UInt8 {
        var h = seed
        for b in bytes {
            h ^= UInt64(b)
            h &*= prime
        }
        return h
    }

    /// The partition (or shard) that owns a document: FNV-1a of
    /// `collection`, a 0x1F separator, then `documentID`, modulo `count`.
    public static func partition(collection: String, documentID: String, count: Int) -> Int {
        precondition(count > 0)
        var h = fnv1a(collection)
        h ^= 0x1F
        h &*= prime
        h = fnv1a(documentID, seed: h)
        // A final avalanche so that small ids spread over few partitions evenly.
        h ^= h >> 33
        h &*= 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        return Int(h % UInt64(count))
    }
}
