import HeapModule

/// Keeps the `k` best hits seen so far, on swift-collections' `Heap` (a min-max
/// heap: its minimum is the worst hit kept, the one a better hit replaces).
///
/// Order is total and deterministic: higher score first; equal scores by the
/// caller's tie key, smaller first (documents by id, then chunk ordinal).
public struct TopK<Key: Comparable> {
    public struct Entry: Comparable {
        public var score: Double
        public var key: Key

        /// `a < b` when `a` ranks below (is worse than) `b`.
        @inline(__always)
        public static func < (a: Entry, b: Entry) -> Bool {
            a.score < b.score || (a.score == b.score && a.key > b.key)
        }

        public static func == (a: Entry, b: Entry) -> Bool { a.score == b.score && a.key == b.key }
    }

    public let k: Int
    private var heap = Heap<Entry>()

    public init(k: Int) {
        self.k = max(0, k)
    }

    /// The score a new hit must reach to possibly enter (ties may still enter).
    @inline(__always)
    public var threshold: Double { heap.count < k ? -.infinity : heap.min!.score }

    @inline(__always)
    public mutating func insert(score: Double, key: @autoclosure () -> Key) {
        guard k > 0, score >= threshold else { return }
        let e = Entry(score: score, key: key())
        if heap.count < k {
            heap.insert(e)
        } else if heap.min! < e {
            heap.replaceMin(with: e)
        }
    }

    /// Best first.
    public func sorted() -> [Entry] {
        heap.unordered.sorted(by: >)
    }
}
