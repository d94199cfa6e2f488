import Synchronization

/// An in-memory LRU bounded by bytes (not only entries), with a TTL per entry.
/// Thread-safe; every operation is O(1).
public final class LRUCache<Value: Sendable>: Sendable {
    struct Node {
        var key: String
        var value: Value
        var bytes: Int
        var expires: ContinuousClock.Instant
        var prev: Int
        var next: Int
    }

    struct State {
        var nodes: [Node] = []
        var free: [Int] = []
        var index: [String: Int] = [:]
        var head = -1  // most recently used
        var tail = -1  // least recently used
        var bytes = 0
        var evictions: UInt64 = 0
    }

    public let capacityBytes: Int
    private let state = Mutex(State())

    public init(capacityBytes: Int) {
        self.capacityBytes = capacityBytes
    }

    public func get(_ key: String, now: ContinuousClock.Instant = .now) -> Value? {
        state.withLock { s in
            guard let i = s.index[key] else { return nil }
            if s.nodes[i].expires <= now {
                Self.remove(&s, i)
                return nil
            }
            Self.unlink(&s, i)
            Self.pushFront(&s, i)
            return s.nodes[i].value
        }
    }

    /// Stores `value`, evicting least-recently-used entries to stay within budget.
    /// A value larger than the whole budget is not stored.
    public func set(_ key: String, _ value: Value, bytes: Int, ttl: Duration, now: ContinuousClock.Instant = .now) {
        let cost = bytes + key.utf8.count + 64
        guard cost <= capacityBytes else { return }
        state.withLock { s in
            if let i = s.index[key] { Self.remove(&s, i) }
            while s.bytes + cost > capacityBytes, s.tail >= 0 {
                Self.remove(&s, s.tail)
                s.evictions += 1
            }
            let node = Node(key: key, value: value, bytes: cost, expires: now + ttl, prev: -1, next: -1)
            let i: Int
            if let f = s.free.popLast() { s.nodes[f] = node; i = f } else { s.nodes.append(node); i = s.nodes.count - 1 }
            s.index[key] = i
            s.bytes += cost
            Self.pushFront(&s, i)
        }
    }

    public func removeAll() {
        state.withLock { s in
            let evictions = s.evictions
            s = State()
            s.evictions = evictions
        }
    }

    public var stats: (entries: Int, bytes: Int, evictions: UInt64) {
        state.withLock { ($0.index.count, $0.bytes, $0.evictions) }
    }

    private static func unlink(_ s: inout State, _ i: Int) {
        let (p, n) = (s.nodes[i].prev, s.nodes[i].next)
        if p >= 0 { s.nodes[p].next = n } else { s.head = n }
        if n >= 0 { s.nodes[n].prev = p } else { s.tail = p }
    }

    private static func pushFront(_ s: inout State, _ i: Int) {
        s.nodes[i].prev = -1
        s.nodes[i].next = s.head
        if s.head >= 0 { s.nodes[s.head].prev = i }
        s.head = i
        if s.tail < 0 { s.tail = i }
    }

    private static func remove(_ s: inout State, _ i: Int) {
        unlink(&s, i)
        s.index[s.nodes[i].key] = nil
        s.bytes -= s.nodes[i].bytes
        s.free.append(i)
    }
}
