/// Runs `body`, giving up after `limit`: nil when the time ran out first (the
/// body is then cancelled). Errors of the body are rethrown. Used where a call's
/// own timeout cannot be trusted (Linux URLSession) or is a budget of ours (L2).
public func withTimeout<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask { try await Task.sleep(for: limit); return nil }
        defer { group.cancelAll() }
        return try await group.next() ?? nil
    }
}
