/// Per-collection readers–writer gates that order writes against a reindex.
///
/// Writes to a collection normally hold its gate shared and run side by side.
/// While a reindex builds a new storage, every write holds it exclusively
/// (it commits to both storages, and two writes of one document must reach
/// both in the same order), and so does each step of the build that checks
/// the current storage and then writes the new one. Waiters are served in
/// arrival order, so a steady stream of shared writes cannot starve a build.
actor WriteGates {
    private struct Gate {
        var shared = 0
        var exclusive = false
        var waiters: [(exclusive: Bool, resume: CheckedContinuation<Void, Never>)] = []
        var idle: Bool { shared == 0 && !exclusive && waiters.isEmpty }
    }

    private var gates: [String: Gate] = [:]

    func acquire(_ name: String, exclusive: Bool) async {
        var g = gates[name] ?? Gate()
        if g.waiters.isEmpty && !g.exclusive && (!exclusive || g.shared == 0) {
            if exclusive { g.exclusive = true } else { g.shared += 1 }
            gates[name] = g
            return
        }
        gates[name] = g
        await withCheckedContinuation { c in gates[name, default: Gate()].waiters.append((exclusive, c)) }
    }

    func release(_ name: String, exclusive: Bool) {
        guard var g = gates[name] else { return }
        if exclusive { g.exclusive = false } else { g.shared -= 1 }
        // Hand the gate on in arrival order: one exclusive waiter, or every shared one at the front.
        while let next = g.waiters.first, !g.exclusive, !next.exclusive || g.shared == 0 {
            g.waiters.removeFirst()
            if next.exclusive { g.exclusive = true } else { g.shared += 1 }
            next.resume.resume()
        }
        gates[name] = g.idle ? nil : g
    }
}

extension Coordinator {
    /// Runs a write to `collection` in its gate: shared, or exclusive while the
    /// collection has a build (checked again once inside, since a build may
    /// have begun while this write waited).
    func gatedWrite<T: Sendable>(_ collection: String, _ body: () async throws -> T) async throws -> T {
        var exclusive = await registry.build(collection) != nil
        while true {
            await gates.acquire(collection, exclusive: exclusive)
            if exclusive { break }
            if await registry.build(collection) == nil { break }
            await gates.release(collection, exclusive: false)
            exclusive = true
        }
        return try await releasing(collection, exclusive: exclusive, after: body)
    }

    /// Runs `body` with the collection's gate held exclusively (a reindex step).
    func exclusively<T: Sendable>(_ collection: String, _ body: () async throws -> T) async throws -> T {
        await gates.acquire(collection, exclusive: true)
        return try await releasing(collection, exclusive: true, after: body)
    }

    /// Runs `body`, then releases the gate held, whatever `body` does.
    private func releasing<T: Sendable>(_ collection: String, exclusive: Bool, after body: () async throws -> T) async throws -> T {
        do {
            let value = try await body()
            await gates.release(collection, exclusive: exclusive)
            return value
        } catch {
            await gates.release(collection, exclusive: exclusive)
            throw error
        }
    }
}
