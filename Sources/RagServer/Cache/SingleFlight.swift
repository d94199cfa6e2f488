import Foundation
import Synchronization

/// Coalesces concurrent identical work: while a computation for a key is in
/// flight, later callers wait for its result instead of starting their own.
/// The computation is cancelled only when every waiter has gone (deadline or
/// cancel), so one impatient caller cannot fail the others.
final class SingleFlight: Sendable {
    struct Flight {
        var task: Task<Data, any Error>
        var waiters: Int
    }

    private let flights = Mutex<[String: Flight]>([:])

    /// Returns the value and whether this caller joined someone else's flight.
    func run(_ key: String, _ body: @escaping @Sendable () async throws -> Data) async throws -> (Data, joined: Bool) {
        let (task, joined) = flights.withLock { f -> (Task<Data, any Error>, Bool) in
            if var flight = f[key] {
                flight.waiters += 1
                f[key] = flight
                return (flight.task, true)
            }
            let task = Task { try await body() }
            f[key] = Flight(task: task, waiters: 1)
            return (task, false)
        }
        defer {
            flights.withLock { f in
                guard var flight = f[key] else { return }
                flight.waiters -= 1
                if flight.waiters == 0 { f[key] = nil } else { f[key] = flight }
            }
        }
        let value = try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            let abandon = flights.withLock { f -> Bool in
                guard let flight = f[key] else { return true }
                return flight.waiters <= 1
            }
            if abandon { task.cancel() }
        }
        return (value, joined)
    }
}
