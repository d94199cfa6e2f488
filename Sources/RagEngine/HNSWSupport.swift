import Synchronization

/// Sets of visited marks for graph walks, reused: a set is a tag per node,
/// and a walk counts as having visited the nodes holding its own tag.
final class VisitedPool: Sendable {
    struct Marks: Sendable {
        var tags: [UInt32] = []
        var tag: UInt32 = 0
    }

    private let free = Mutex<[Marks]>([])

    /// A set covering `count` nodes with a tag no node holds yet.
    func acquire(count: Int) -> Marks {
        var m = free.withLock { $0.popLast() } ?? Marks()
        if m.tags.count < count { m.tags.append(contentsOf: repeatElement(0, count: count - m.tags.count)) }
        m.tag &+= 1
        if m.tag == 0 {
            for i in m.tags.indices { m.tags[i] = 0 }
            m.tag = 1
        }
        return m
    }

    func release(_ m: Marks) { free.withLock { if $0.count < 64 { $0.append(m) } } }
}

/// A node and its score.
public struct Scored: Sendable, Hashable {
    public var score: Float
    public var id: Int32

    public init(score: Float, id: Int32) {
        self.score = score
        self.id = id
    }

    /// Higher score first; the lower id on a tie (so results are deterministic).
    @inline(__always)
    public static func before(_ a: Scored, _ b: Scored) -> Bool { a.score > b.score || (a.score == b.score && a.id < b.id) }
}

/// A binary heap of scored nodes: the best on top, or the worst.
struct ScoredHeap {
    private(set) var items: [Scored] = []
    let bestOnTop: Bool

    init(bestOnTop: Bool) { self.bestOnTop = bestOnTop }

    var count: Int { items.count }
    var top: Scored? { items.first }

    @inline(__always)
    private func above(_ a: Scored, _ b: Scored) -> Bool { bestOnTop ? Scored.before(a, b) : Scored.before(b, a) }

    mutating func push(_ s: Scored) {
        items.append(s)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard above(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Scored? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        guard !items.isEmpty else { return first }
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var best = i
            if l < items.count, above(items[l], items[best]) { best = l }
            if r < items.count, above(items[r], items[best]) { best = r }
            guard best != i else { return first }
            items.swapAt(i, best)
            i = best
        }
    }
}

/// SplitMix64 (Steele, Lea & Flood): a small seeded generator, the same
/// numbers on every machine (levels here, synthetic data in benchmarks).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
