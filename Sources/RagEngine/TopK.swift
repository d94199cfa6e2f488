/// A bounded min-heap that keeps the `k` best hits seen so far.
///
/// Order is total and deterministic: higher score first; equal scores by the
/// caller's tie key, smaller first (documents by id, then chunk ordinal).
public struct TopK<Key: Comparable> {
    public struct Entry {
        public var score: Double
        public var key: Key
    }

    public let k: Int
    public private(set) var entries: [Entry] = []

    public init(k: Int) {
        self.k = max(0, k)
        entries.reserveCapacity(self.k)
    }

    /// True when `a` ranks below `b` (is worse).
    @inline(__always)
    static func worse(_ a: Entry, _ b: Entry) -> Bool {
        a.score < b.score || (a.score == b.score && a.key > b.key)
    }

    /// The score a new hit must reach to possibly enter (ties may still enter).
    @inline(__always)
    public var threshold: Double { entries.count < k ? -.infinity : entries[0].score }

    @inline(__always)
    public mutating func insert(score: Double, key: @autoclosure () -> Key) {
        guard k > 0, score >= threshold else { return }
        let e = Entry(score: score, key: key())
        if entries.count < k {
            entries.append(e)
            siftUp(entries.count - 1)
        } else if Self.worse(entries[0], e) {
            entries[0] = e
            siftDown(0)
        }
    }

    /// Best first.
    public func sorted() -> [Entry] {
        entries.sorted { Self.worse($1, $0) }
    }

    private mutating func siftUp(_ i: Int) {
        var i = i
        while i > 0 {
            let p = (i - 1) / 2
            guard Self.worse(entries[i], entries[p]) else { return }
            entries.swapAt(i, p); i = p
        }
    }

    private mutating func siftDown(_ i: Int) {
        var i = i
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < entries.count, Self.worse(entries[l], entries[m]) { m = l }
            if r < entries.count, Self.worse(entries[r], entries[m]) { m = r }
            guard m != i else { return }
            entries.swapAt(i, m); i = m
        }
    }
}
