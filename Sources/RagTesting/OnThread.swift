import Foundation
import RagServer

/// Runs blocking work (starting a child process and waiting for its first line,
/// polling a port) on a thread of its own. Tests call this instead of blocking
/// one of the few cooperative threads that every test and in-process server of
/// the run share: on two cores, two tests starting processes at once would
/// otherwise stall every in-process server for the duration.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        Thread { c.resume(with: Result { try body() }) }.start()
    }
}

/// Runs `body`, and the child tasks it starts, on `threads` threads of their
/// own instead of the cooperative pool. For tests whose tasks do seconds of
/// synchronous work or wait on locks (an index's readers–writer lock while a
/// writer holds it): on two cores the cooperative pool has two threads, which
/// every in-process server of the run needs to answer at all. Unstructured
/// tasks do not inherit the preference: start them with
/// `Task(executorPreference:)` and the executor passed to `body`.
public func withOwnThreads<T: Sendable>(_ threads: Int, name: String = "test",
                                        _ body: (ThreadPoolExecutor) async throws -> T) async throws -> T {
    let executor = ThreadPoolExecutor(name: name, threads: threads)
    defer { executor.shutdown() }
    return try await withTaskExecutorPreference(executor) { try await body(executor) }
}

extension RagdProcess {
    /// `init` on a thread of its own.
    public static func launch(dataDirectory: String, port: Int = 0, extraArguments: [String] = [], environment: [String: String] = [:]) async throws -> RagdProcess {
        try await onThread { try RagdProcess(dataDirectory: dataDirectory, port: port, extraArguments: extraArguments, environment: environment) }
    }
}

extension LocalCluster {
    /// `init` on a thread of its own.
    public static func launch(shards: Int, replicas: Int, writeQuorum: Int? = nil, etcd: String? = nil,
                              coordinatorArguments: [String] = [], shardArguments: [String] = []) async throws -> LocalCluster {
        try await onThread {
            try LocalCluster(shards: shards, replicas: replicas, writeQuorum: writeQuorum, etcd: etcd, coordinatorArguments: coordinatorArguments,
                             shardArguments: shardArguments)
        }
    }

    /// `addShardNode` on a thread of its own.
    public func launchShardNode(_ name: String) async throws -> RagdProcess {
        try await onThread { try self.addShardNode(name) }
    }

    /// `addCoordinator` on a thread of its own.
    public func launchCoordinator(_ name: String, extraArguments: [String] = []) async throws -> RagdProcess {
        try await onThread { try self.addCoordinator(name, extraArguments: extraArguments) }
    }

    /// `restart` on a thread of its own.
    public func relaunch(shard: Int, replica: Int) async throws {
        try await onThread { try self.restart(shard: shard, replica: replica) }
    }
}

extension RedisProcess {
    /// `init` on a thread of its own.
    public static func launch() async throws -> RedisProcess {
        try await onThread { try RedisProcess() }
    }
}

extension RagdProcess {
    /// `terminate` (SIGTERM, wait for the exit) off the cooperative pool.
    @discardableResult
    public func stop() async -> Int32 {
        (try? await onThread { self.terminate() }) ?? -1
    }

    /// `kill9` off the cooperative pool.
    public func crash() async {
        _ = try? await onThread { self.kill9() }
    }
}
